import { FitStopped } from '../../method/value-function-training.js';
import type { SparseDataset } from '../../data/dataset.js';
import { phiAt, TrajectoryGenerator } from '../../method/trajectory.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import type { Queue } from '../../ports/queue.port.js';
import { StopConsuming } from '../queue-consumer.js';
import {
  type ChunkResult,
  chunkResultSchema,
  type JobMessage,
  type JobSpec,
  type JobStatus,
} from '../../schemas/job.js';
import { type FanOutModel, fannedOutSchema, fanOutModelSchema } from '../../schemas/job-markers.js';
import { unwrap } from '../../util/result.js';
import { JobError } from '../../storage/job-errors.js';
import { resolveRunConfig } from './job-spec.js';
import { withLabelNoise } from '../training/run-rows.js';
import { fitValueFunction } from '../training/meta-train.js';
import type { ValueFunctionHealth } from '../training/meta-train-config.js';
import { MetricObserver } from '../training/observe-metric.js';
import type { RunConfig } from '../training/recipes.js';
import { modelFingerprint } from '../../models/model-fingerprint.js';
import { prepareTraining } from '../training/prepare-training.js';
import { jobKeys } from '../../storage/layout.js';
import {
  heldOutOf,
  jobStatus,
  readJobStatus,
  type TrainingProgress,
  trainingStatus,
  writeJobStatus,
} from '../../storage/job-documents.js';
import { saveOnce, stashJobResult } from '../../storage/job-result.js';
import type { Logger } from '../../ports/logger.port.js';

/**
 * The fan-out protocol of a training job on trainer workers (METHOD.md stage 1 fanned out):
 * `start` sends one `chunk` message per trajectory chunk; `chunk` computes a chunk's
 * trajectories and metric observations and commits them with a conditional create
 * (`jobs/<id>/tasks/<chunk>.json`), so a chunk delivered twice or computed by two workers counts
 * once, and the worker that commits the last chunk sends `fit`; `fit` trains the value function
 * from all chunks and saves it once. A worker keeps what it built for a job (the pre-trained
 * model, the trajectory generator) for the next message of the same job.
 */
export interface FanOutDeps {
  store: ObjectStore;
  queue: Queue;
  load(spec: JobSpec): Promise<{ dataset: SparseDataset; evaluator: Evaluator; oracle: MetricOracle }>;
  backend: string;
  progress: ProgressReporter;
  workerId: string;
  log: Logger;
  now: () => Date;
  stopped: () => boolean;
  /** Counts committed chunks and fits. */
  summary: { chunks: number; fits: number };
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

export function createFanOut(deps: FanOutDeps) {
  const { store, queue, log, now, stopped, summary } = deps;
  const contexts = new Map<string, JobContext>();

  const context = async (spec: JobSpec): Promise<JobContext> => {
    const have = contexts.get(spec.id);
    if (have) return have;
    const cfg = resolveRunConfig(spec);
    if (!cfg.ok) throw cfg.error;
    const loaded = await deps.load(spec);
    const noisy = withLabelNoise(loaded.dataset, cfg.value);
    if (!noisy.ok) throw noisy.error;
    const inputs = { ...loaded, dataset: noisy.value };
    const preparing = await prepareTraining(cfg.value, { ...inputs, progress: deps.progress });
    // CONVNET_NEEDS_IMAGES or a broken evaluator ends the job as a thrown error did before.
    if (!preparing.ok) throw preparing.error;
    const prepared = preparing.value;
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
    if (!completed) throw new StopConsuming();
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
      if (stopped()) throw new StopConsuming();
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
    const fitted = await fitValueFunction(
      { ...ctx.cfg.metaTrain, checkpointId: spec.output.valueFunctionId, jobId: spec.id },
      { trajectories: traj, outcome: { observations, sent, failed: failures.length, failures } },
      { model: ctx.model, oracle: ctx.oracle, progress: deps.progress, dataset: ctx.dataset },
      { stopRequested: stopped },
    ).catch((e) => {
      throw e instanceof FitStopped ? new StopConsuming() : e;
    });
    // META_TRAIN_NO_DATA ends the job as a thrown error did before: the worker loop reports it.
    if (!fitted.ok) throw fitted.error;
    const trained = fitted.value;
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

  const start = async (spec: JobSpec) => {
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

  return {
    start,
    chunk: handleChunk,
    fit: handleFit,
    /** Frees the models kept for jobs. */
    dispose() {
      for (const c of contexts.values()) c.model.dispose();
      contexts.clear();
    },
  };
}
