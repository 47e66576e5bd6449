import { FitStopped } from '../../method/value-function-training.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import type { CheckpointContent } from '../../schemas/checkpoint.js';
import type { FitJobResult } from '../../schemas/job-result.js';
import { type FitJobSpec, type JobSpec, type JobStatus, jobSpecSchema } from '../../schemas/job.js';
import { err, ok, type Result } from '../../util/result.js';
import type { FitOracleFactory } from '../../ports/fit.port.js';
import { scorePredictions } from './fit-inputs.js';
import { createFitJob, observationsPrefix } from './fit-job-spec.js';
import { checkPublishable, type OwnershipError } from './fit-ownership.js';
import { jobKeys } from '../../storage/layout.js';
import {
  DEFAULT_JOB_LEASE_MS,
  heldOutOf,
  jobStatus,
  lastErrorOf,
  readJobStatus,
  writeJobStatus,
} from '../../storage/job-documents.js';
import { findSaved, readJobResult, saveOnce, stashJobResult } from '../../storage/job-result.js';
import { JobError } from '../../storage/job-errors.js';
import { resolveRunConfig } from '../jobs/job-spec.js';
import { type FitTrajectory, fitTrajectories } from '../training/fit-trajectories.js';
import type { MetaTrainConfig } from '../training/meta-train-config.js';
import { loadObservationSet, type RecordedTrajectory, trajectoriesOf } from './observation-store.js';
import { ObservationError } from './observation-batches.js';
import type { TrainJobOutcome } from '../jobs/train-value-function.js';

/**
 * Bring your own model (issue 12): a value function fitted to the trajectories a remote training
 * loop recorded. Each trajectory's sparse metric observations are densified with the GP over its
 * recorded steps (as meta-training does), the value function is trained with the recipe's
 * settings, measured on held-out trajectories, and saved as the next version of its id, which
 * `metricopt serve` then serves. A fit job journals like a training job: the spec at
 * `jobs/<id>/job.json`, the status document `jobs/<id>/status.json`, the fitted content stashed at
 * `jobs/<id>/result.json` before it is saved, so a job killed anywhere and run again saves one
 * version only, and a job that is done changes nothing.
 */
export interface FitJobDeps {
  store: ObjectStore;
  progress: ProgressReporter;
  /** The compute backend in use, for the status document. */
  backend: string;
  /**
   * Scores lines that carry predictions instead of a metric value (fit-inputs.ts): the
   * evaluation queue where one is configured, the evaluator in process otherwise. Absent, such
   * lines fail the job (OBSERVATION_PREDICTIONS_UNSUPPORTED).
   */
  oracleFor?: FitOracleFactory | undefined;
  /** Aborted (SIGTERM): the job stops (between training steps during the fit) and says so. */
  signal?: AbortSignal | undefined;
  /** The runner's lease in the status document (default DEFAULT_FIT_LEASE_MS), renewed every third of it. */
  leaseMs?: number | undefined;
  now?: () => Date;
}

/** The value-function settings of a fit job: its recipe at its seed, then its metaTrain overrides. */
export function resolveFitConfig(spec: FitJobSpec): Result<MetaTrainConfig, JobError> {
  // A training job with the same recipe, seed and overrides (its other fields take their defaults).
  const asTrainJob: JobSpec = jobSpecSchema.parse({
    format: 'metricopt.job',
    schemaVersion: 1,
    id: spec.id,
    dataset: { source: 'observations' },
    metric: { builtin: spec.metric.name },
    recipe: spec.recipe,
    seed: spec.seed,
    overrides: spec.overrides.metaTrain === undefined ? {} : { metaTrain: spec.overrides.metaTrain },
    output: spec.output,
  });
  const resolved = resolveRunConfig(asTrainJob);
  if (!resolved.ok) return resolved;
  return ok({ ...resolved.value.metaTrain, checkpointId: spec.output.valueFunctionId, jobId: spec.id });
}

/** The recorded trajectories as the fit takes them: metric normalised to lower-is-better. */
export function fitTrajectoriesOf(
  recorded: readonly RecordedTrajectory[],
  direction: FitJobSpec['metric']['direction'],
) {
  return recorded.map(
    (r): FitTrajectory => ({
      steps: r.steps,
      phis: r.phis,
      T: r.steps[r.steps.length - 1] as number,
      observations: r.metric.map(([step, v]) => ({ step, value: direction === 'maximize' ? 1 - v : v })),
    }),
  );
}

/**
 * Runs a fit job (spec kind `metricopt.fit-job`) to the end: the entry point a queue worker
 * calls for it, as it calls `trainValueFunction` for a training job. Run again on a job that is
 * done, it changes nothing; on one that was killed, it fits again and saves at most one version.
 */
export async function runFitJob(
  spec: FitJobSpec,
  deps: FitJobDeps,
): Promise<Result<TrainJobOutcome, JobError | ObservationError | OwnershipError>> {
  const cfg = resolveFitConfig(spec);
  if (!cfg.ok) return cfg;
  const { store } = deps;
  const now = deps.now ?? (() => new Date());
  const created = await createFitJob(store, spec);
  if (!created.ok) return created;

  const previous = await readJobStatus(store, spec.id);
  const startedAt = previous.ok ? previous.value.startedAt : now().toISOString();
  let status = jobStatus({ jobId: spec.id, backend: deps.backend, startedAt }, { stage: 'observations' });
  // Status writes go out one at a time, in order: the heartbeat and progress writes never land
  // after a later state. A running job carries its lease; a finished one does not.
  const leaseMs = deps.leaseMs ?? DEFAULT_FIT_LEASE_MS;
  let chain: Promise<void> = Promise.resolve();
  const write = (patch: Partial<JobStatus>): Promise<void> => {
    const { leaseExpiresAt: _, ...rest } = { ...status, ...patch };
    const at = now();
    status =
      rest.state === 'running'
        ? { ...rest, updatedAt: at.toISOString(), leaseExpiresAt: new Date(at.getTime() + leaseMs).toISOString() }
        : { ...rest, updatedAt: at.toISOString() };
    const snapshot = status;
    const written = chain.then(() => writeJobStatus(store, snapshot));
    chain = written.catch(() => undefined);
    return written;
  };
  // Cancelled (POST /v1/fit-jobs/{id}/cancel writes the marker): checked now and with each heartbeat.
  let cancelled = (await store.get(jobKeys(spec.id).cancel)) !== undefined;
  const heartbeat = setInterval(() => {
    void (async () => {
      if ((await store.get(jobKeys(spec.id).cancel)) !== undefined) cancelled = true;
      if (status.state === 'running') await write({});
    })().catch(() => undefined);
  }, leaseMs / 3);
  heartbeat.unref?.();
  try {
    return await fitOnce(spec, deps, cfg.value, {
      previous,
      write,
      cancelled: () => cancelled,
      status: () => status,
      progress: statusProgress(deps.progress, write),
    });
  } finally {
    clearInterval(heartbeat);
    await chain;
  }
}

/** How long a fit's lease lasts without a heartbeat (it is renewed every third of it). */
export const DEFAULT_FIT_LEASE_MS = DEFAULT_JOB_LEASE_MS;

/** The reporter a fit is given: the runner's own, and the status document's `progress` about once a second. */
function statusProgress(
  inner: ProgressReporter,
  write: (patch: Partial<JobStatus>) => Promise<void>,
): ProgressReporter {
  let total = 0;
  let last = 0;
  return {
    start(stage, n) {
      inner.start(stage, n);
      total = n;
      last = performance.now();
      write({ progress: { done: 0, total: n } }).catch(() => undefined);
    },
    tick(done, note) {
      inner.tick(done, note);
      if (performance.now() - last < 1000) return;
      last = performance.now();
      write({ progress: { done: Math.min(done, total), total } }).catch(() => undefined);
    },
    end(summary) {
      inner.end(summary);
    },
  };
}

interface FitRun {
  previous: Result<JobStatus, JobError>;
  write: (patch: Partial<JobStatus>) => Promise<void>;
  cancelled: () => boolean;
  progress: ProgressReporter;
  status: () => JobStatus;
}

async function fitOnce(
  spec: FitJobSpec,
  deps: FitJobDeps,
  config: MetaTrainConfig,
  run: FitRun,
): Promise<Result<TrainJobOutcome, JobError | ObservationError | OwnershipError>> {
  const { store } = deps;
  const { previous, write } = run;
  const cfg = { value: config };
  const stopCancelled = async () => {
    await write({ state: 'cancelled' });
    return err(new JobError('JOB_CANCELLED', `fit job '${spec.id}' was cancelled`));
  };
  if (run.cancelled()) return stopCancelled();

  // Done before (the stashed content was saved as a version): repair the status, change nothing else.
  const stash = await readJobResult(store, spec.id, 'fit');
  if (!stash.ok) {
    await write({ state: 'failed', lastError: { code: stash.error.code, message: stash.error.message } });
    return stash;
  }
  const stashed = stash.value;
  if (stashed !== undefined) {
    const found = await findSaved(store, stashed.checkpoint);
    if (found !== undefined) {
      const saved = { id: found.id, version: found.version };
      if (!previous.ok || previous.value.state !== 'done') {
        await write({ ...stashed.status, state: 'done', stage: 'done', etaSeconds: 0, valueFunction: saved });
      }
      return ok({ kind: 'already-done', valueFunction: saved });
    }
  }

  const loaded = await loadObservationSet(store, observationsPrefix(spec));
  const predictionLines = [...loaded.byKey.values()].filter((o) => o.predictions !== undefined).length;
  const fail = async (error: ObservationError | JobError | OwnershipError) => {
    await write({ state: 'failed', lastError: { code: error.code, message: error.message } });
    return err(error);
  };
  if (predictionLines > 0 && deps.oracleFor === undefined) {
    return fail(
      new ObservationError(
        'OBSERVATION_PREDICTIONS_UNSUPPORTED',
        `fit job '${spec.id}': ${predictionLines} lines name predictions, but this runner has no evaluators to score them (run it on a trainer worker, metricopt serve or metricopt fit)`,
      ),
    );
  }
  const scoring =
    predictionLines > 0 && deps.oracleFor !== undefined
      ? await scorePredictions(store, spec, loaded, deps.oracleFor, deps.progress)
      : ok({ set: loaded, failures: [] });
  if (!scoring.ok) return fail(scoring.error);
  const { set, failures } = scoring.value;
  const unscored =
    failures.length === 0
      ? ''
      : `${failures.length} of ${predictionLines} predictions could not be scored (first: trajectory '${failures[0]?.trajectory}' step ${failures[0]?.step}: ${failures[0]?.code}: ${failures[0]?.message})`;
  const recorded = trajectoriesOf(set, `fit job '${spec.id}'`);
  if (!recorded.ok) {
    const e = recorded.error;
    return fail(
      unscored
        ? new ObservationError(e.code as 'OBSERVATIONS_INSUFFICIENT', `${e.message}; ${unscored}`, e.details as never)
        : e,
    );
  }
  const trajectories = fitTrajectoriesOf(recorded.value, spec.metric.direction);
  const observed = trajectories.reduce((a, t) => a + t.observations.length, 0);
  await write({
    stage: 'fit',
    tasks: { done: trajectories.length, total: trajectories.length },
    evaluations: {
      total: observed + failures.length,
      sent: observed + failures.length,
      returned: observed,
      failed: failures.length,
    },
    ...(unscored
      ? { lastError: { code: failures[0]?.code ?? 'EVALUATOR_FAILED', message: unscored.slice(0, 500) } }
      : {}),
  });
  if (deps.signal?.aborted) {
    await write({ state: 'interrupted' });
    return ok({ kind: 'interrupted', stage: 'fit', tasksDone: trajectories.length, evaluationsDone: observed });
  }

  let content: CheckpointContent;
  let health: FitJobResult['health'];
  try {
    const found =
      stashed?.checkpoint !== undefined
        ? ok({ checkpoint: stashed.checkpoint, health: stashed.health })
        : await fitTrajectories(cfg.value, trajectories, {
            control: { stopRequested: () => deps.signal?.aborted === true || run.cancelled() },
            d: set.d as number,
            adapterKind: 'external',
            metric: { name: spec.metric.name, direction: spec.metric.direction },
            dataset: `observations:${spec.id}`,
            progress: run.progress,
            queries: {
              sent: observed + failures.length,
              failed: failures.length,
              failures: failures.map((f) => ({
                taskId: 0,
                step: f.step,
                code: f.code,
                message: `trajectory '${f.trajectory}': ${f.message}`,
              })),
            },
          });
    // META_TRAIN_NO_DATA goes the way it went before: the catch below writes the failed status and
    // rethrows (runFitJob's own Result carries the errors its callers dead-letter, not this one).
    if (!found.ok) throw found.error;
    const fitted = found.value;
    health = fitted.health;
    const mine: FitJobResult = {
      checkpoint: fitted.checkpoint,
      health,
      status: { ...run.status(), heldOut: heldOutOf(health, true) },
    };
    // An interrupted run may have stashed (and saved) its fit already: its content and createdAt are kept.
    const kept = await stashJobResult(store, spec.id, 'fit', mine);
    if (!kept.ok) return fail(kept.error);
    content = kept.value.checkpoint;
    health = kept.value.health;
  } catch (e) {
    if (e instanceof FitStopped) {
      if (run.cancelled()) return stopCancelled();
      // SIGTERM during the fit: nothing of it is kept; a resume runs it again (the same bits).
      await write({ state: 'interrupted' });
      return ok({ kind: 'interrupted', stage: 'fit', tasksDone: trajectories.length, evaluationsDone: observed });
    }
    await write({ state: 'failed', lastError: lastErrorOf(e) });
    throw e;
  }
  if (run.cancelled()) return stopCancelled();
  // Another job may have published a version of another kind since this one started.
  const publishable = await checkPublishable(store, content.id, spec.metric, content.d);
  if (!publishable.ok) return fail(publishable.error);
  const checkpoint = await saveOnce(store, content, true);
  await write({
    state: 'done',
    stage: 'done',
    etaSeconds: 0,
    heldOut: heldOutOf(health, true),
    valueFunction: { id: checkpoint.id, version: checkpoint.version },
  });
  return ok({ kind: 'done', checkpoint, health, resumed: previous.ok });
}
