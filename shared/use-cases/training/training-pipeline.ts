import { FitStopped } from '../../method/value-function-training.js';
import type { SparseDataset } from '../../data/dataset.js';
import { phiAt, TrajectoryGenerator } from '../../method/trajectory.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import { modelFingerprint } from '../../models/model-fingerprint.js';
import type { ComputePool } from '../../ports/compute-pool.port.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import type { ValueFunctionCheckpoint } from '../../schemas/checkpoint.js';
import type { JobStage } from '../../schemas/job.js';
import { JobError } from '../../storage/job-errors.js';
import type { CmaEsError } from '../../method/cma-es.js';
import type { MetricError } from '../../metrics/errors.js';
import type { ModelError } from '../../models/errors.js';
import type { UseCaseError } from './errors.js';
import { fitValueFunction, type MetaTrainResult } from './meta-train.js';
import type { ValueFunctionHealth } from './meta-train-config.js';
import { MetricObserver } from './observe-metric.js';
import { prepareTraining } from './prepare-training.js';
import { loadTrajectories, type RunCache, saveTrajectories, trajectoriesKey } from './run-cache.js';
import type { RunConfig } from './recipes.js';
import { saveOnce } from '../../storage/job-result.js';
import type { JournalProgress, PipelineJournal } from '../../ports/pipeline-journal.port.js';

/**
 * Training a value function (METHOD.md stages 0-4): pre-train the backbone, collect loss-only
 * trajectories, observe the metric along them, fit the value function, save its checkpoint.
 * `metricopt train`, the training container and (for its meta-training part) `metricopt demo`
 * all run this pipeline; a job (`trainValueFunction`) adds checkpoint and resume through the
 * object store, so a killed trainer continues where it stopped and ends with the same bits.
 */
export interface PipelineDeps {
  dataset: SparseDataset;
  /** The metric in-process: probed once on the pre-trained model so a broken evaluator fails at once. */
  evaluator: Evaluator;
  oracle: MetricOracle;
  store: ObjectStore;
  progress: ProgressReporter;
  /**
   * Worker threads for the trajectories and the metric queries' predictions (the same bits as
   * this thread's); absent, all of it runs here.
   */
  pool?: ComputePool | undefined;
  /** Pre-trained backbones and trajectories of earlier runs with the same inputs (run-cache.ts). */
  cache?: RunCache | undefined;
}

export interface PipelineRun {
  cfg: RunConfig;
  checkpointId: string;
  /** Job id of the metric queries (oracle). */
  queryJobId: string;
  /** Each trajectory chunk seeded on its own (a fan-out job's seeding; shared/schemas/job.ts). */
  perChunkSeeds?: boolean;
}

export type PipelineOutcome =
  | {
      kind: 'done';
      model: AdaptedModel;
      checkpoint: ValueFunctionCheckpoint;
      health: ValueFunctionHealth;
      /** In-memory runs only (the demo reads its trajectories and observations). */
      trained: MetaTrainResult | undefined;
      /** Seconds per stage: pre-training, then meta-training = trajectories + metric queries + fit (and saving). */
      timings: { pretrainS: number; metaTrainS: number; trajectoriesS: number; queriesS: number; fitS: number };
    }
  | { kind: 'stopped'; stage: JobStage; tasksDone: number; evaluationsDone: number }
  /** An expected failure of the run: the outcome's third kind, beside done and stopped. */
  | { kind: 'failed'; error: PipelineError };

/** The run's expected failures: no data to meta-train on, label noise without a group, images the ConvNet cannot read, a broken evaluator, a CMA-ES start it rejects (non-finite phi). */
export type PipelineError = UseCaseError | ModelError | MetricError | CmaEsError;

/**
 * The pipeline. The caller owns the returned model (dispose it). With a journal, state is saved
 * at every stage boundary, after every trajectory chunk and every metric-query batch, and when a
 * stop is requested; a journal's `resume` state continues a previous run.
 */
export async function runTrainingPipeline(
  run: PipelineRun,
  deps: PipelineDeps,
  journal?: PipelineJournal,
): Promise<PipelineOutcome> {
  const { cfg } = run;
  const ds = deps.dataset;
  const progress = deps.progress;
  const resume = journal?.resume;
  const stop = () => journal?.stopRequested() === true;

  const t0 = performance.now();
  const prepared = await prepareTraining(cfg, deps);
  if (!prepared.ok) return { kind: 'failed', error: prepared.error };
  const { model, spec, modelKey, valRows, valSplit, sampler } = prepared.value;
  const t1 = performance.now();
  let tTrajectories = t1;
  let tQueries = t1;
  let handedOver = false;
  try {
    if (deps.pool) await deps.pool.load(spec);
    const fingerprint = journal ? modelFingerprint(model, valRows) : '';
    if (resume?.modelFingerprint && resume.modelFingerprint !== fingerprint) {
      throw new JobError(
        'JOB_STATE_INVALID',
        `job ${resume.jobId}: pre-training gave a different model (${fingerprint}, the job started with ${resume.modelFingerprint}); resume it on the backend it started on`,
      );
    }

    // Stage 1: trajectories, chunk by chunk.
    const gen = new TrajectoryGenerator(
      model,
      sampler,
      cfg.metaTrain.trajectories,
      journal?.chunkTasks ?? 200,
      run.perChunkSeeds ? 'per-chunk' : 'stream',
    );
    const traj = gen.trajectories;
    const chunkBytes = (c: number) => gen.chunkBytes(c);
    if (resume && resume.trajectories.chunksDone > 0) {
      const r = resume.trajectories;
      if (r.chunkTasks !== gen.chunkTasks || r.tasks !== traj.n || r.rng === null) {
        throw new JobError('JOB_STATE_INVALID', `job ${resume.jobId}: trajectory state does not fit the job`);
      }
      for (let c = 0; c < r.chunksDone; c++) {
        const bytes = await (journal as PipelineJournal).loadChunk(c);
        if (!bytes || !gen.setChunkBytes(c, bytes)) {
          throw new JobError(
            'JOB_STATE_INVALID',
            `job ${resume.jobId}: trajectory chunk ${c} is ${bytes ? `${bytes.byteLength} bytes, not the chunk's size` : 'missing'}`,
          );
        }
      }
      gen.restore(r.chunksDone, r.rng);
    }
    // An in-memory run reuses (and leaves) the trajectories of the same model and config.
    const cache = journal ? undefined : deps.cache;
    const trajKey = cache
      ? trajectoriesKey(
          modelKey,
          cfg.metaTrain.trajectories,
          gen.chunkTasks,
          run.perChunkSeeds ? 'per-chunk' : 'stream',
        )
      : '';
    const cached = cache ? await loadTrajectories(cache, trajKey) : undefined;
    if (cached && cached.chunks.length === gen.chunks && cached.chunks.every((b, c) => gen.setChunkBytes(c, b))) {
      gen.restore(gen.chunks, cached.rng);
      progress.start('trajectories (reused from the run cache)', 1);
      progress.end();
    }

    const requests = traj.querySteps.flatMap((steps, taskId) =>
      steps.map((step) => ({ taskId, step, phi: phiAt(traj, taskId, step) })),
    );
    const observer = new MetricObserver(model, deps.oracle, requests, valRows, {
      jobId: run.queryJobId,
      split: 'val',
      tasks: traj.n,
      batch: journal?.queryBatch ?? 48,
      pool: deps.pool,
    });
    if (resume && (resume.stage === 'fit' || resume.stage === 'observations')) {
      const o = resume.observations;
      if (o.perTask.length !== traj.n || o.total !== requests.length) {
        throw new JobError('JOB_STATE_INVALID', `job ${resume.jobId}: observation state does not fit the job`);
      }
      observer.restore({
        done: o.done,
        observations: o.perTask.map((list) => list.map(([step, value]) => ({ step, value }))),
        failures: o.failures,
      });
    }

    const save = async (
      stage: JobStage,
      stageDone: number,
      stageTotal: number,
      extra: Partial<JournalProgress> = {},
    ) => {
      if (!journal) return;
      const obs = observer.state();
      await journal.save({
        stage,
        modelFingerprint: fingerprint,
        trajectories: {
          tasks: traj.n,
          chunkTasks: gen.chunkTasks,
          chunksDone: gen.chunksDone,
          tasksDone: gen.tasksDone,
          rng: gen.rngState(),
        },
        observations: {
          done: obs.done,
          total: requests.length,
          observations: obs.observations,
          failures: obs.failures,
        },
        health: null,
        valueFunction: null,
        stageDone,
        stageTotal,
        ...extra,
      });
    };
    const stopped = (stage: JobStage): PipelineOutcome => ({
      kind: 'stopped',
      stage,
      tasksDone: gen.tasksDone,
      evaluationsDone: observer.done,
    });

    if (!gen.finished) {
      await save('trajectories', gen.tasksDone, traj.n);
      progress.start('trajectories (loss-only fine-tuning)', gen.totalSteps);
      if (gen.chunksDone > 0) progress.tick(gen.tasksDone * traj.T);
      // A pool's workers hold the data set as the command loaded it, with its clean labels: a
      // run with label noise (withLabelNoise) fine-tunes on its noisy training labels here alone.
      const pool = (cfg.labelNoise ?? 0) > 0 ? undefined : deps.pool;
      while (!gen.finished) {
        const c = gen.chunksDone;
        let completed = true;
        if (pool) progress.tick(await gen.runChunkOn(pool));
        else if (journal) completed = await gen.runChunkAsync(stop, (done) => progress.tick(done));
        else gen.runChunk((done) => progress.tick(done));
        if (journal) {
          if (completed) {
            await journal.saveChunk(c, chunkBytes(c));
            await save('trajectories', gen.tasksDone, traj.n);
          }
          if (stop()) {
            progress.end('stopped');
            await save('trajectories', gen.tasksDone, traj.n);
            return stopped('trajectories');
          }
        }
      }
      progress.end();
      if (cache) {
        const chunks = Array.from({ length: gen.chunks }, (_, c) => chunkBytes(c));
        await saveTrajectories(cache, trajKey, { chunks, rng: gen.rngState() });
      }
    }
    tTrajectories = performance.now();

    // The metric's labels, then the queries along the trajectories.
    await deps.oracle.registerSplit('val', valSplit);
    if (!observer.finished) {
      await save('observations', observer.done, observer.total);
      progress.start(`metric queries (${deps.oracle.metric.name})`, observer.total);
      if (observer.done > 0) progress.tick(observer.done);
      while (!observer.finished) {
        await observer.nextBatch();
        progress.tick(observer.done, observer.failures.length > 0 ? `${observer.failures.length} failed` : undefined);
        await save('observations', observer.done, observer.total);
        if (stop() && !observer.finished) {
          progress.end('stopped');
          return stopped('observations');
        }
      }
      progress.end();
    }
    tQueries = performance.now();
    await save('fit', 0, 1);
    if (stop()) return stopped('fit');

    // Stages 2-4: GP labels, the value function, held-out health; then the checkpoint.
    let fitted: Awaited<ReturnType<typeof fitValueFunction>>;
    try {
      fitted = await fitValueFunction(
        { ...cfg.metaTrain, checkpointId: run.checkpointId, jobId: run.queryJobId },
        { trajectories: traj, outcome: observer.outcome() },
        { model, oracle: deps.oracle, progress, dataset: ds.name, pool: deps.pool },
        journal ? { stopRequested: stop } : undefined,
      );
    } catch (e) {
      // SIGTERM during the fit: the state stays at the fit's start; a resume fits again, to the same bits.
      if (e instanceof FitStopped) return stopped('fit');
      throw e;
    }
    if (!fitted.ok) return { kind: 'failed', error: fitted.error };
    const trained: MetaTrainResult = fitted.value;
    const content = journal ? await journal.stashResult(trained.checkpoint) : trained.checkpoint;
    const checkpoint = await saveOnce(deps.store, content, journal !== undefined);
    const t2 = performance.now();
    const health = trained.health;
    await save('done', 1, 1, {
      health,
      valueFunction: { id: checkpoint.id, version: checkpoint.version, createdAt: checkpoint.createdAt },
    });
    handedOver = true;
    return {
      kind: 'done',
      model,
      checkpoint,
      health,
      trained: journal ? undefined : trained,
      timings: {
        pretrainS: (t1 - t0) / 1000,
        metaTrainS: (t2 - t1) / 1000,
        trajectoriesS: (tTrajectories - t1) / 1000,
        queriesS: (tQueries - tTrajectories) / 1000,
        fitS: (t2 - tQueries) / 1000,
      },
    };
  } finally {
    if (!handedOver) model.dispose();
  }
}
