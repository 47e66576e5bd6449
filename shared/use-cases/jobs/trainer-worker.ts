import { FitStopped } from '../../method/value-function-training.js';
import type { SparseDataset } from '../../data/dataset.js';
import { phiAt, TrajectoryGenerator } from '../../method/trajectory.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import { holdLease, type Queue, type QueueMessage } from '../../ports/queue.port.js';
import type { TaskProtection } from '../../ports/task-protection.port.js';
import {
  type ChunkResult,
  chunkResultSchema,
  type JobMessage,
  type JobSpec,
  type JobStatus,
  jobMessageSchema,
  jobSpecSchema,
} from '../../schemas/job.js';
import { type FanOutModel, fannedOutSchema, fanOutModelSchema } from '../../schemas/job-markers.js';
import { ok, type Result, unwrap } from '../../util/result.js';
import type { FitOracleFactory } from '../../ports/fit.port.js';
import { loadFitJobSpec } from '../byom/fit-job-spec.js';
import { runFitJob } from '../byom/fit-observations.js';
import { JobError, type JobErrorCode } from '../../storage/job-errors.js';
import { resolveRunConfig } from './job-spec.js';
import { fitValueFunction, type ValueFunctionHealth } from '../training/meta-train.js';
import { MetricObserver } from '../training/observe-metric.js';
import type { RunConfig } from '../training/recipes.js';
import { loadJobSpec, modelFingerprint, prepareTraining, trainValueFunction } from './train-value-function.js';
import { jobKeys } from '../../storage/layout.js';
import {
  heldOutOf,
  jobStatus,
  lastErrorOf,
  readJobStatus,
  storeJobSpec,
  type TrainingProgress,
  trainingStatus,
  writeJobStatus,
} from '../../storage/job-documents.js';
import { saveOnce, stashJobResult } from '../../storage/job-result.js';
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

/** What a worker builds once per job: the pre-trained model and the trajectory generator. */
interface JobContext {
  spec: JobSpec;
  cfg: RunConfig;
  model: AdaptedModel;
  gen: TrajectoryGenerator;
  valRows: Int32Array;
  oracle: MetricOracle;
  dataset: string;
}

class Stopped extends Error {}

/** How a handler settles the message it holds. */
type Settle = Pick<Queue, 'ack' | 'release' | 'deadLetter'>;

/**
 * Job errors that another delivery cannot fix: the message is dead-lettered. JOB_STATE_CONFLICT
 * is not one: another live trainer holds the job, and this delivery comes back later.
 */
const POISON: ReadonlySet<JobErrorCode> = new Set<JobErrorCode>([
  'JOB_SPEC_NOT_JSON',
  'JOB_SPEC_INVALID',
  'JOB_SPEC_MISMATCH',
  'JOB_NOT_FOUND',
  'JOB_STATE_INVALID',
]);

export async function runTrainerWorker(deps: TrainerWorkerDeps): Promise<WorkerSummary> {
  const { store, queue } = deps;
  const log = deps.logger ?? silentLogger;
  const now = deps.now ?? (() => new Date());
  const stopped = () => deps.signal?.aborted === true;
  const summary: WorkerSummary = { handled: 0, chunks: 0, fits: 0, jobs: 0, stopped: false };
  const leaseMs = deps.visibilityTimeoutMs ?? 15 * 60_000;
  const contexts = new Map<string, JobContext>();
  let idleSince = performance.now();

  const context = async (spec: JobSpec): Promise<JobContext> => {
    const have = contexts.get(spec.id);
    if (have) return have;
    const cfg = resolveRunConfig(spec);
    if (!cfg.ok) throw cfg.error;
    const inputs = await deps.load(spec);
    const prepared = await prepareTraining(cfg.value, { ...inputs, progress: deps.progress });
    const fingerprint = modelFingerprint(prepared.model, prepared.valRows);
    const keys = jobKeys(spec.id);
    const mine: FanOutModel = { fingerprint, backend: deps.backend };
    if (!(await store.putIfAbsent(keys.model, JSON.stringify(mine)))) {
      const first = fanOutModelSchema.parse(JSON.parse((await getText(store, keys.model)) as string));
      if (first.fingerprint !== fingerprint) {
        prepared.model.dispose();
        throw new JobError(
          'JOB_STATE_INVALID',
          `job ${spec.id}: this worker's pre-trained model (${fingerprint}, ${deps.backend}) differs from the job's (${first.fingerprint}, ${first.backend}); run all of its workers on one backend`,
        );
      }
    }
    const gen = new TrajectoryGenerator(
      prepared.model,
      prepared.sampler,
      cfg.value.metaTrain.trajectories,
      spec.checkpoint.chunkTasks,
      'per-chunk',
    );
    await inputs.oracle.registerSplit('val', prepared.valSplit);
    for (const [id, c] of contexts) {
      c.model.dispose();
      contexts.delete(id);
    }
    const ctx: JobContext = {
      spec,
      cfg: cfg.value,
      model: prepared.model,
      gen,
      valRows: prepared.valRows,
      oracle: inputs.oracle,
      dataset: inputs.dataset.name,
    };
    contexts.set(spec.id, ctx);
    return ctx;
  };

  const records = async (id: string): Promise<ChunkResult[]> => {
    const keys = (await store.list(jobKeys(id).tasksPrefix)).filter((k) => k.endsWith('.json'));
    const out: ChunkResult[] = [];
    for (const k of keys) out.push(chunkResultSchema.parse(JSON.parse((await getText(store, k)) as string)));
    return out;
  };

  const writeStatus = async (
    ctx: JobContext,
    done: ChunkResult[],
    state: JobStatus['state'],
    extra: Partial<TrainingProgress> = {},
  ) => {
    const traj = ctx.gen.trajectories;
    const previous = await readJobStatus(store, ctx.spec.id);
    const startedAt = previous.ok ? previous.value.startedAt : now().toISOString();
    const tasksDone = done.reduce((a, r) => a + r.tasks.end - r.tasks.start, 0);
    const status = trainingStatus(
      { jobId: ctx.spec.id, backend: deps.backend, startedAt, updatedAt: now().toISOString() },
      {
        state,
        stage: tasksDone < traj.n ? 'trajectories' : 'fit',
        tasks: { done: tasksDone, total: traj.n },
        evaluations: {
          total: traj.querySteps.reduce((a, s) => a + s.length, 0),
          sent: done.reduce((a, r) => a + r.sent, 0),
          perTask: done.flatMap((r) => r.perTask),
          failed: done.reduce((a, r) => a + r.failures.length, 0),
        },
        pace:
          tasksDone < traj.n
            ? {
                done: tasksDone,
                seconds: (now().getTime() - Date.parse(startedAt)) / 1000,
                remaining: traj.n - tasksDone,
              }
            : undefined,
        ...extra,
      },
    );
    await writeJobStatus(store, status);
  };

  const handleChunk = async (spec: JobSpec, chunk: number) => {
    const keys = jobKeys(spec.id);
    if ((await store.get(keys.taskRecord(chunk))) !== undefined) return; // committed by a delivery before
    const ctx = await context(spec);
    const { gen } = ctx;
    if (chunk >= gen.chunks) throw new JobError('JOB_STATE_INVALID', `job ${spec.id}: no chunk ${chunk}`);
    const t0 = performance.now();
    gen.restore(chunk, gen.rngState());
    const { start, end } = gen.chunkRange(chunk);
    deps.progress.start(
      `job ${spec.id} chunk ${chunk + 1}/${gen.chunks}: trajectories`,
      (end - start) * gen.trajectories.T,
    );
    const completed = await gen.runChunkAsync(stopped, (done) => deps.progress.tick(done - start * gen.trajectories.T));
    deps.progress.end(completed ? undefined : 'stopped');
    if (!completed) throw new Stopped();
    const traj = gen.trajectories;
    const requests = [];
    for (let task = start; task < end; task++) {
      for (const step of traj.querySteps[task] as number[])
        requests.push({ taskId: task, step, phi: phiAt(traj, task, step) });
    }
    const observer = new MetricObserver(ctx.model, ctx.oracle, requests, ctx.valRows, {
      jobId: spec.id,
      split: 'val',
      tasks: traj.n,
      batch: spec.checkpoint.queryBatch,
    });
    while (!observer.finished) {
      if (stopped()) throw new Stopped();
      await observer.nextBatch();
    }
    const outcome = observer.outcome();
    const record: ChunkResult = {
      format: 'metricopt.job-chunk',
      schemaVersion: 1,
      jobId: spec.id,
      chunk,
      tasks: { start, end },
      perTask: outcome.observations
        .slice(start, end)
        .map((list) => list.map((o) => [o.step, o.value] as [number, number])),
      sent: outcome.sent,
      failures: outcome.failures,
      worker: deps.workerId,
      seconds: (performance.now() - t0) / 1000,
    };
    await store.put(keys.taskBytes(chunk), gen.chunkBytes(chunk));
    if (!(await store.putIfAbsent(keys.taskRecord(chunk), JSON.stringify(chunkResultSchema.parse(record))))) return;
    summary.chunks++;
    log.info('chunk-done', {
      jobId: spec.id,
      chunk,
      tasks: end - start,
      evaluations: outcome.sent,
      seconds: record.seconds,
    });
    const done = await records(spec.id);
    await writeStatus(ctx, done, 'running');
    // The worker that commits the last chunk asks for the fit, once.
    if (done.length === gen.chunks && (await store.putIfAbsent(keys.fitRequested, now().toISOString()))) {
      await queue.send([JSON.stringify({ kind: 'fit', jobId: spec.id } satisfies JobMessage)]);
    }
  };

  const handleFit = async (spec: JobSpec) => {
    const status = await readJobStatus(store, spec.id);
    if (status.ok && status.value.state === 'done') return;
    const ctx = await context(spec);
    const { gen } = ctx;
    const traj = gen.trajectories;
    const done = await records(spec.id);
    if (done.length !== gen.chunks) {
      throw new JobError('JOB_STATE_INVALID', `job ${spec.id}: fit asked with ${done.length} of ${gen.chunks} chunks`);
    }
    const observations = Array.from({ length: traj.n }, () => [] as { step: number; value: number }[]);
    const failures: ChunkResult['failures'] = [];
    for (const r of done) {
      const bytes = await store.get(jobKeys(spec.id).taskBytes(r.chunk));
      if (!bytes || !gen.setChunkBytes(r.chunk, bytes)) {
        throw new JobError('JOB_STATE_INVALID', `job ${spec.id}: trajectories of chunk ${r.chunk} are missing or torn`);
      }
      r.perTask.forEach((list, i) => {
        observations[r.tasks.start + i] = list.map(([step, value]) => ({ step, value }));
      });
      failures.push(...r.failures);
    }
    const sent = done.reduce((a, r) => a + r.sent, 0);
    await writeStatus(ctx, done, 'running', { stage: 'fit' });
    const trained = await fitValueFunction(
      { ...ctx.cfg.metaTrain, checkpointId: spec.output.valueFunctionId, jobId: spec.id },
      { trajectories: traj, outcome: { observations, sent, failed: failures.length, failures } },
      { model: ctx.model, oracle: ctx.oracle, progress: deps.progress, dataset: ctx.dataset },
      { stopRequested: stopped },
    ).catch((e) => {
      throw e instanceof FitStopped ? new Stopped() : e;
    });
    const content = unwrap(await stashJobResult(store, spec.id, 'training', trained.checkpoint));
    const checkpoint = await saveOnce(store, content, true);
    summary.fits++;
    const h: ValueFunctionHealth = trained.health;
    await writeStatus(ctx, done, 'done', {
      stage: 'done',
      heldOut: heldOutOf(h),
      valueFunction: { id: checkpoint.id, version: checkpoint.version },
    });
    log.info('done', { jobId: spec.id, valueFunction: { id: checkpoint.id, version: checkpoint.version }, health: h });
  };

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
      if (result.value.kind === 'interrupted') throw new Stopped();
      log.info(result.value.kind, { jobId: spec.id });
      return;
    }
    const keys = jobKeys(spec.id);
    if ((await store.get(keys.fanned)) !== undefined) return;
    const cfg = resolveRunConfig(spec);
    if (!cfg.ok) throw cfg.error;
    const chunks = Math.ceil(cfg.value.metaTrain.trajectories.tasks / spec.checkpoint.chunkTasks);
    const bodies = Array.from({ length: chunks }, (_, chunk) =>
      JSON.stringify({ kind: 'chunk', jobId: spec.id, chunk } satisfies JobMessage),
    );
    for (let i = 0; i < bodies.length; i += 10) await queue.send(bodies.slice(i, i + 10));
    await store.putIfAbsent(keys.fanned, JSON.stringify(fannedOutSchema.parse({ chunks, at: now().toISOString() })));
    const status = jobStatus(
      { jobId: spec.id, backend: deps.backend, startedAt: now().toISOString() },
      { stage: 'trajectories', tasks: { done: 0, total: cfg.value.metaTrain.trajectories.tasks } },
    );
    await writeJobStatus(store, status, { ifAbsent: true });
    log.info('fanned-out', { jobId: spec.id, chunks });
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
      throw new Stopped();
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
      } else if (parsed.kind === 'chunk') await handleChunk(spec.value, parsed.chunk);
      else await handleFit(spec.value);
      await q.ack(message.receipt);
    } catch (e) {
      if (e instanceof Stopped) {
        await q.release(message.receipt, 0);
        throw e;
      }
      const error = lastErrorOf(e);
      log.error('failed', { jobId: parsed.jobId, kind: parsed.kind, ...error });
      const status = await readJobStatus(store, parsed.jobId);
      if (status.ok) {
        await writeJobStatus(store, { ...status.value, lastError: error, updatedAt: now().toISOString() });
      }
      // A poison job error will not go away on a retry; another trainer on the job comes back
      // after it had time to finish; anything else (the store, the network) may pass soon.
      if (e instanceof JobError && POISON.has(e.code as JobErrorCode)) {
        await q.deadLetter(message, `${error.code}: ${error.message}`);
      } else await q.release(message.receipt, e instanceof JobError ? leaseMs : 1000);
    }
  };

  /**
   * Runs `work` holding the message's lease and, when given, the task's scale-in protection;
   * `work` settles the message through the queue it is handed, which stops the lease first.
   */
  const holding = async (message: QueueMessage, work: (q: Settle) => Promise<void>): Promise<void> => {
    const where = { id: message.id, receiveCount: message.receiveCount };
    const lease = holdLease(queue, message.receipt, leaseMs / 1000, {
      onLost: () => log.warn('lease-lost', where),
      onError: (e) => log.warn('lease-error', { ...where, message: String((e as Error).message ?? e) }),
    });
    const protection = deps.protection;
    const protect = () =>
      protection
        ?.protect((2 * leaseMs) / 60_000)
        .catch((e: unknown) => log.warn('protection-error', { message: String((e as Error).message ?? e) }));
    await protect();
    const renew = protection ? setInterval(() => void protect(), leaseMs / 3) : undefined;
    renew?.unref?.();
    const q: Settle = {
      ack: async (receipt) => {
        await lease.stop();
        await queue.ack(receipt);
      },
      release: async (receipt, delayMs) => {
        await lease.stop();
        await queue.release(receipt, delayMs);
      },
      deadLetter: async (m, reason) => {
        await lease.stop();
        await queue.deadLetter(m, reason);
      },
    };
    try {
      await work(q);
    } finally {
      clearInterval(renew);
      await lease.stop();
      await protection
        ?.clear()
        .catch((e: unknown) => log.warn('protection-error', { message: String((e as Error).message ?? e) }));
    }
  };

  try {
    while (!stopped()) {
      const [message] = await queue.receive({ max: 1, waitMs: 1000, visibilityTimeoutMs: leaseMs });
      if (!message) {
        if (deps.idleExitMs !== undefined && performance.now() - idleSince > deps.idleExitMs) break;
        continue;
      }
      summary.handled++;
      try {
        await holding(message, (q) => handle(message, q));
      } catch (e) {
        if (e instanceof Stopped) break;
        throw e;
      }
      idleSince = performance.now();
    }
  } finally {
    for (const c of contexts.values()) c.model.dispose();
  }
  summary.stopped = stopped();
  return summary;
}
