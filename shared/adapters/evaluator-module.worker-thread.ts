import { Worker } from 'node:worker_threads';
import { MetricError } from '../metrics/errors.js';
import type { EvaluateOptions, EvaluationInput, Evaluator } from '../ports/evaluator.port.js';
import { loadEvaluatorModule, moduleUrl } from './evaluator-module.in-process.js';
import type { Result } from '../util/result.js';

/**
 * A user evaluator module run in worker threads, so that its deadline holds for synchronous
 * code too: evaluateChecked aborts the call's signal when the time is up, and the worker running
 * it is terminated (a `for (;;) {}` in the user's `evaluate` cannot be interrupted any other
 * way). The module is loaded once in this thread to check its shape (the messages of
 * loadEvaluatorModule), then in each worker; idle workers are kept for the next call (at most
 * `maxIdle`), a terminated one is replaced on the next call.
 *
 * Costs: a worker's start (tens of milliseconds) on the first call and after each timeout, and
 * a copy of the scores and labels (and rows and context, when given) per call.
 */
export async function loadEvaluatorModuleInWorker(
  path: string,
  options: {
    maxIdle?: number;
    /**
     * A deadline for calls made without a signal of their own (callers that pass no timeout):
     * past it the worker is terminated and the call fails with EVALUATOR_TIMEOUT.
     */
    deadlineMs?: number;
  } = {},
): Promise<Result<Evaluator, MetricError>> {
  const checked = await loadEvaluatorModule(path);
  if (!checked.ok) return checked;
  const { name, direction, version } = checked.value;
  const pool = new WorkerPool(moduleUrl(path), name, options.maxIdle ?? 4);
  const deadlineMs = options.deadlineMs ?? 0;
  const evaluator: Evaluator = {
    name,
    direction,
    ...(version === undefined ? {} : { version }),
    evaluate: async (input, callOptions = {}) => {
      if (callOptions.signal !== undefined || deadlineMs <= 0) return pool.run(input, callOptions);
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), deadlineMs);
      try {
        return await pool.run(input, { ...callOptions, signal: deadline.signal });
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return { ok: true, value: evaluator };
}

/** The worker: imports the module, then answers `{ id, input }` with `{ id, value }` or `{ id, error }`. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const loaded = import(workerData.url).then((mod) => mod.default);
parentPort.on('message', async ({ id, input }) => {
  try {
    const evaluator = await loaded;
    const value = await evaluator.evaluate(input);
    parentPort.postMessage({ id, value });
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
`;

/** What the worker's evaluator sees: the input's own fields, rows and context only when given. */
function workerInput(input: EvaluationInput): EvaluationInput {
  const { scores, labels, classes, rows, context } = input;
  return {
    scores,
    labels,
    classes,
    ...(rows === undefined ? {} : { rows }),
    ...(context === undefined ? {} : { context: { ...context } }),
  };
}

interface Pending {
  resolve: (value: number) => void;
  reject: (error: unknown) => void;
}

class WorkerPool {
  private readonly idle: Worker[] = [];
  private nextId = 0;

  constructor(
    private readonly url: string,
    private readonly name: string,
    private readonly maxIdle: number,
  ) {}

  run(input: EvaluationInput, options: EvaluateOptions = {}): Promise<number> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(this.timeout());
    const worker = this.idle.pop() ?? this.spawn();
    worker.ref();
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      const pending: Pending = { resolve, reject };
      const done = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal?.removeEventListener('abort', onAbort);
      };
      const onMessage = (m: { id: number; value?: unknown; error?: string }) => {
        if (m.id !== id) return;
        done();
        this.release(worker);
        if (m.error !== undefined) pending.reject(new Error(m.error));
        else pending.resolve(m.value as number);
      };
      const onError = (e: Error) => {
        done();
        pending.reject(e);
      };
      const onExit = (code: number) => {
        done();
        pending.reject(new Error(`evaluator worker exited with code ${code}`));
      };
      const onAbort = () => {
        done();
        // The only way to stop synchronous code: end its thread. The next call gets a new one.
        void worker.terminate();
        pending.reject(this.timeout());
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ id, input: workerInput(input) });
    });
  }

  private spawn(): Worker {
    return new Worker(WORKER_SOURCE, { eval: true, workerData: { url: this.url } });
  }

  private release(worker: Worker): void {
    if (this.idle.length >= this.maxIdle) {
      void worker.terminate();
      return;
    }
    worker.unref(); // an idle worker does not keep the process alive
    this.idle.push(worker);
  }

  private timeout(): MetricError {
    return new MetricError(
      'EVALUATOR_TIMEOUT',
      `evaluator '${this.name}' did not answer in time; its worker thread was terminated (a slow evaluator: raise --evaluator-timeout-ms)`,
    );
  }
}
