import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { selectBackend } from './compute-backend.js';
import type { ObjectStoreOptions } from './from-url.js';
import { inProcessOracles } from './metric-oracle.in-process.js';
import { builtinEvaluator } from '../metrics/registry.js';
import type { ObjectStore } from '../ports/object-store.port.js';
import { silentProgress } from '../ports/progress.port.js';
import type { FitJobSpec } from '../schemas/job.js';
import type { FitLauncher } from '../ports/fit.port.js';
import { endFitJob } from '../use-cases/byom/fit-job-api.js';
import { runFitJob } from '../use-cases/byom/fit-observations.js';
import type { FitWorkerData, FitWorkerResult } from './fit-launcher.worker.js';

/** A fit that runs longer than this in `metricopt serve` is stopped (FIT_BUDGET_EXCEEDED). */
export const DEFAULT_FIT_BUDGET_MS = 30 * 60_000;

export interface InProcessFitOptions {
  /**
   * The compiled worker module (default: fit-launcher.worker.js beside this module, as built in dist/).
   * When there is none (this module run from its TypeScript source, as in unit tests), fits run
   * on the serving thread instead, with the same budget and cancel, and a warning is logged.
   */
  workerUrl?: URL;
  /** Run fits on the serving thread even when there is a worker (as before issue 23; bench/ compares). */
  onServingThread?: boolean;
  /** Wall-clock budget of one fit (default DEFAULT_FIT_BUDGET_MS). */
  budgetMs?: number;
  /** How the worker reopens the store (S3 endpoint settings). */
  storeOptions?: ObjectStoreOptions;
  /** The fit's lease in its status document (runFitJob's default when omitted). */
  leaseMs?: number;
}

/** A running fit: how to stop it. */
interface Running {
  id: string;
  stop(why: 'cancelled' | 'budget'): void;
}

/**
 * The FitLauncher port's worker-thread adapter. Runs started fit jobs for `metricopt serve`
 * (functions/value-api/node.ts) when no jobs queue is configured, one
 * after another in the background, each in a worker thread: the tfjs work never blocks the
 * thread that answers requests. Each fit has a wall-clock budget; `cancel` ends the one
 * running (a queued one sees its cancel marker when its turn comes). Lines scored from
 * predictions are scored by the built-in evaluators. Kept out of the Lambda bundle.
 */
export function inProcessFitLauncher(
  store: ObjectStore,
  log: (entry: Record<string, unknown>) => void,
  options: InProcessFitOptions = {},
): FitLauncher & { idle(): Promise<void>; cancel(id: string): Promise<void>; knows(id: string): boolean } {
  const budgetMs = options.budgetMs ?? DEFAULT_FIT_BUDGET_MS;
  const sibling = new URL('./fit-launcher.worker.js', import.meta.url);
  const workerUrl = options.onServingThread
    ? undefined
    : (options.workerUrl ?? (existsSync(fileURLToPath(sibling)) ? sibling : undefined));
  if (workerUrl === undefined && !options.onServingThread) {
    log({ level: 'warn', msg: 'value-api: no compiled fit worker; fits run on the serving thread (npm run build)' });
  }
  let running: Promise<void> = Promise.resolve();
  let current: Running | undefined;
  const given = new Set<string>();
  let backend: Promise<string> | undefined;

  /** On the serving thread (no compiled worker): stops only between training steps. */
  const inThread = async (spec: FitJobSpec, signal: AbortSignal): Promise<FitWorkerResult> => {
    backend ??= selectBackend((process.env.METRICOPT_BACKEND as 'wasm' | undefined) ?? 'auto').then((b) => b.name);
    const r = await runFitJob(spec, {
      store,
      progress: silentProgress,
      backend: await backend,
      oracleFor: inProcessOracles(builtinEvaluator),
      signal,
      leaseMs: options.leaseMs,
    });
    return r.ok ? { ok: true, kind: r.value.kind } : { ok: false, code: r.error.code, message: r.error.message };
  };

  const inWorker = (spec: FitJobSpec, url: URL, onStop: (stop: () => Promise<void>) => void) =>
    new Promise<FitWorkerResult | undefined>((resolve) => {
      const data: FitWorkerData = {
        location: store.location,
        storeOptions: options.storeOptions ?? {},
        jobId: spec.id,
        leaseMs: options.leaseMs,
      };
      const worker = new Worker(url, { workerData: data });
      let result: FitWorkerResult | undefined;
      onStop(async () => {
        await worker.terminate();
      });
      worker.once('message', (m: FitWorkerResult) => {
        result = m;
      });
      worker.once('error', (e) => {
        result = { ok: false, code: 'INTERNAL', message: e.message };
      });
      worker.once('exit', () => resolve(result));
    });

  const runOne = async (spec: FitJobSpec): Promise<void> => {
    const started = performance.now();
    log({
      level: 'info',
      msg: 'value-api: fit job started',
      jobId: spec.id,
      isolation: workerUrl ? 'worker' : 'thread',
    });
    let stopped: 'cancelled' | 'budget' | undefined;
    const controller = new AbortController();
    let terminate: (() => Promise<void>) | undefined;
    current = {
      id: spec.id,
      stop(why) {
        stopped ??= why;
        controller.abort();
        void terminate?.();
      },
    };
    const timer = setTimeout(() => current?.stop('budget'), budgetMs);
    let result: FitWorkerResult | undefined;
    try {
      result = workerUrl
        ? await inWorker(spec, workerUrl, (stop) => {
            terminate = stop;
          })
        : await inThread(spec, controller.signal);
    } catch (e) {
      result = { ok: false, code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
    } finally {
      clearTimeout(timer);
      current = undefined;
    }
    // The runner is gone: what it could not write, the launcher writes.
    if (stopped === 'budget') {
      const message = `the fit ran past its wall-clock budget of ${Math.round(budgetMs / 1000)} s and was stopped`;
      await endFitJob(store, spec.id, 'failed', { code: 'FIT_BUDGET_EXCEEDED', message });
      result = { ok: false, code: 'FIT_BUDGET_EXCEEDED', message };
    } else if (stopped === 'cancelled') {
      await endFitJob(store, spec.id, 'cancelled');
      result = { ok: false, code: 'JOB_CANCELLED', message: 'cancelled' };
    } else if (result === undefined) {
      const message = 'the fit worker exited without an answer';
      await endFitJob(store, spec.id, 'failed', { code: 'FIT_WORKER_EXITED', message });
      result = { ok: false, code: 'FIT_WORKER_EXITED', message };
    }
    log({
      level: result.ok || result.code === 'JOB_CANCELLED' ? 'info' : 'warn',
      msg: 'value-api: fit job finished',
      jobId: spec.id,
      outcome: result.ok ? result.kind : result.code,
      ...(result.ok ? {} : { message: result.message.slice(0, 300) }),
      seconds: Math.round((performance.now() - started) / 100) / 10,
    });
  };

  return {
    via: 'in-process',
    launch(spec) {
      given.add(spec.id);
      running = running
        .then(() => runOne(spec))
        .catch((e) => {
          log({ level: 'error', msg: 'value-api: fit job failed', jobId: spec.id, error: String(e) });
        });
      return Promise.resolve();
    },
    async cancel(id) {
      if (current?.id === id) current.stop('cancelled');
    },
    knows: (id) => given.has(id),
    idle: () => running,
  };
}
