import type { SparseDataset } from '../../data/dataset.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import type { Queue, QueueMessage } from '../../ports/queue.port.js';
import { consumeQueue, type Settle, StopConsuming } from '../queue-consumer.js';
import type { TaskProtection } from '../../ports/task-protection.port.js';
import { type JobMessage, type JobSpec, jobMessageSchema, jobSpecSchema } from '../../schemas/job.js';
import { ok, type Result } from '../../util/result.js';
import type { FitOracleFactory } from '../../ports/fit.port.js';
import { loadFitJobSpec } from '../byom/fit-job-spec.js';
import { runFitJob } from '../byom/fit-observations.js';
import { JobError } from '../../storage/job-errors.js';
import { loadJobSpec, trainValueFunction } from './train-value-function.js';
import { lastErrorOf, readJobStatus, storeJobSpec, writeJobStatus } from '../../storage/job-documents.js';
import { createFanOut } from './fan-out.js';
import { type Logger, silentLogger } from '../../ports/logger.port.js';

/**
 * A trainer worker on the jobs queue (METHOD.md stage 1 fanned out): `metricopt train --worker`
 * here, the ECS trainer service deployed. It takes one message at a time:
 * - `job`: a job that does not fan out runs whole here (resumable, `trainValueFunction`); a
 *   fan-out job becomes one `chunk` message per trajectory chunk;
 * - `chunk`: the chunk's trajectories and their metric observations, committed with a
 *   conditional create (`jobs/<id>/tasks/<chunk>.json`), so a chunk delivered twice or computed
 *   by two workers counts once; the worker that commits the last chunk sends `fit`;
 * - `fit`: the value function from all chunks, saved once (`saveOnce`), then the job is done.
 * While it works on a message the worker extends the message's lease (visibility) every third of
 * `visibilityTimeoutMs`, so a message outliving its first lease is not delivered to a second
 * worker, and keeps its task protected from scale-in when given `protection`.
 * SIGTERM abandons the message in hand (released at once: another worker takes it) and the worker exits.
 */
export interface TrainerWorkerDeps {
  store: ObjectStore;
  queue: Queue;
  /** The job's data set and evaluator, and the oracle its metric queries go through. */
  load(spec: JobSpec): Promise<{ dataset: SparseDataset; evaluator: Evaluator; oracle: MetricOracle }>;
  /** Scores the lines of a fit job that carry predictions (fit-inputs.ts); absent, such jobs fail. */
  fitOracles?: FitOracleFactory | undefined;
  backend: string;
  progress: ProgressReporter;
  /** Name of this worker in the chunk records. */
  workerId: string;
  signal?: AbortSignal | undefined;
  /** Return after this long without a message (default: run until the signal). */
  idleExitMs?: number | undefined;
  /**
   * The lease on a received message: it stays hidden from the other workers this long, extended
   * every third of it while this worker works on it; a worker that dies lets it go within this
   * (default 15 min).
   */
  visibilityTimeoutMs?: number | undefined;
  /** Scale-in protection while a message is held (ECS deployed); absent, none. */
  protection?: TaskProtection | undefined;
  logger?: Logger;
  now?: () => Date;
}

export interface WorkerSummary {
  handled: number;
  chunks: number;
  fits: number;
  jobs: number;
  stopped: boolean;
}

/** Stores the job spec (or checks it against the stored one) and queues its `job` message. */
export async function submitJob(
  spec: JobSpec,
  deps: { store: ObjectStore; queue: Queue },
): Promise<Result<void, JobError>> {
  const stored = await storeJobSpec(deps.store, spec.id, spec, jobSpecSchema, () => loadJobSpec(deps.store, spec.id));
  if (!stored.ok) return stored;
  await deps.queue.send([JSON.stringify({ kind: 'job', jobId: spec.id } satisfies JobMessage)]);
  return ok(undefined);
}

export async function runTrainerWorker(deps: TrainerWorkerDeps): Promise<WorkerSummary> {
  const { store, queue } = deps;
  const log = deps.logger ?? silentLogger;
  const now = deps.now ?? (() => new Date());
  const stopped = () => deps.signal?.aborted === true;
  const summary: WorkerSummary = { handled: 0, chunks: 0, fits: 0, jobs: 0, stopped: false };
  const leaseMs = deps.visibilityTimeoutMs ?? 15 * 60_000;
  const fanOut = createFanOut({ ...deps, log, now, stopped, summary });

  const handleJob = async (spec: JobSpec) => {
    if (!spec.fanOut) {
      const inputs = await deps.load(spec);
      const result = await trainValueFunction(spec, {
        store,
        ...inputs,
        progress: deps.progress,
        backend: deps.backend,
        signal: deps.signal,
      });
      if (!result.ok) throw result.error;
      if (result.value.kind === 'interrupted') throw new StopConsuming();
      log.info(result.value.kind, { jobId: spec.id });
      return;
    }
    await fanOut.start(spec);
  };

  /** Runs the job if it is a fit job (answers false when it is not one). Idempotent: once done it changes nothing. */
  const handleFitJob = async (jobId: string, message: QueueMessage, q: Settle): Promise<boolean> => {
    const fit = await loadFitJobSpec(store, jobId);
    if (!fit.ok) return false;
    const result = await runFitJob(fit.value, {
      store,
      progress: deps.progress,
      backend: deps.backend,
      signal: deps.signal,
      oracleFor: deps.fitOracles,
    });
    if (!result.ok) {
      // Bad observations or spec: runFitJob wrote the failed status; a retry cannot help.
      log.error('failed', { jobId, kind: 'fit-job', code: result.error.code, message: result.error.message });
      await q.deadLetter(message, `${result.error.code}: ${result.error.message}`);
      return true;
    }
    if (result.value.kind === 'interrupted') {
      await q.release(message.receipt, 0);
      throw new StopConsuming();
    }
    log.info('fit-job', { jobId, outcome: result.value.kind });
    summary.jobs++;
    await q.ack(message.receipt);
    return true;
  };

  const handle = async (message: QueueMessage, q: Settle): Promise<void> => {
    let parsed: JobMessage;
    try {
      parsed = jobMessageSchema.parse(JSON.parse(message.body));
    } catch {
      await q.deadLetter(message, 'not a job message (shared/schemas/job.ts jobMessageSchema)');
      return;
    }
    // A fit job (bring your own model, format metricopt.fit-job) runs whole on this worker.
    if (parsed.kind === 'job' && (await handleFitJob(parsed.jobId, message, q))) return;
    const spec = await loadJobSpec(store, parsed.jobId);
    if (!spec.ok) {
      await q.deadLetter(message, spec.error.message);
      return;
    }
    try {
      if (parsed.kind === 'job') {
        await handleJob(spec.value);
        summary.jobs++;
      } else if (parsed.kind === 'chunk') await fanOut.chunk(spec.value, parsed.chunk);
      else await fanOut.fit(spec.value);
      await q.ack(message.receipt);
    } catch (e) {
      if (e instanceof StopConsuming) {
        await q.release(message.receipt, 0);
        throw e;
      }
      const error = lastErrorOf(e);
      log.error('failed', { jobId: parsed.jobId, kind: parsed.kind, ...error });
      const status = await readJobStatus(store, parsed.jobId);
      if (status.ok) {
        await writeJobStatus(store, { ...status.value, lastError: error, updatedAt: now().toISOString() });
      }
      // A job error that is not retryable (a bad spec, unreadable state) will not go away on
      // another delivery; a retryable one (another live trainer holds the job) comes back after it
      // had time to finish; anything else (the store, the network) may pass soon.
      if (e instanceof JobError && !e.retryable) {
        await q.deadLetter(message, `${error.code}: ${error.message}`);
      } else await q.release(message.receipt, e instanceof JobError ? leaseMs : 1000);
    }
  };

  /** Runs `work` holding, when given, the task's scale-in protection (consumeQueue holds the lease). */
  const protecting = async (work: () => Promise<void>): Promise<void> => {
    const protection = deps.protection;
    const protect = () =>
      protection
        ?.protect((2 * leaseMs) / 60_000)
        .catch((e: unknown) => log.warn('protection-error', { message: String((e as Error).message ?? e) }));
    await protect();
    const renew = protection ? setInterval(() => void protect(), leaseMs / 3) : undefined;
    renew?.unref?.();
    try {
      await work();
    } finally {
      clearInterval(renew);
      await protection
        ?.clear()
        .catch((e: unknown) => log.warn('protection-error', { message: String((e as Error).message ?? e) }));
    }
  };

  try {
    const consumed = await consumeQueue(
      {
        queue,
        leaseMs,
        signal: deps.signal,
        idleExitMs: deps.idleExitMs,
        onLeaseLost: (m) => log.warn('lease-lost', { id: m.id, receiveCount: m.receiveCount }),
        onLeaseError: (m, e) =>
          log.warn('lease-error', {
            id: m.id,
            receiveCount: m.receiveCount,
            message: String((e as Error).message ?? e),
          }),
      },
      (message, q) => protecting(() => handle(message, q)),
    );
    summary.handled = consumed.handled;
  } finally {
    fanOut.dispose();
  }
  summary.stopped = stopped();
  return summary;
}
