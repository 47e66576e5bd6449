import type { ObjectStore } from '../../ports/object-store.port.js';
import type { ValueFunctionCheckpoint } from '../../schemas/checkpoint.js';
import {
  type JobSpec,
  type JobStage,
  type JobState,
  type JobStatus,
  jobSpecSchema,
  jobStateSchema,
} from '../../schemas/job.js';
import { ok, type Result, unwrap } from '../../util/result.js';
import { jobKeys } from '../../storage/layout.js';
import {
  DEFAULT_JOB_LEASE_MS,
  heldOutOf,
  jobStatus,
  lastErrorOf,
  readJobDocument,
  readJobStatus,
  requireJobDocument,
  storeJobSpec,
  trainingStatus,
  writeJobStatus,
} from '../../storage/job-documents.js';
import { JobError } from '../../storage/job-errors.js';
import { resolveRunConfig } from './job-spec.js';
import type { ValueFunctionHealth } from '../training/meta-train-config.js';
import { stashJobResult } from '../../storage/job-result.js';
import type { JournalProgress, PipelineJournal } from '../../ports/pipeline-journal.port.js';
import { type PipelineDeps, type PipelineOutcome, runTrainingPipeline } from '../training/training-pipeline.js';
import { withLabelNoise } from '../training/run-rows.js';

/**
 * A training job: the training pipeline (../training/training-pipeline.ts) run with checkpoint
 * and resume through the object store, so a killed trainer continues where it stopped and ends
 * with the same bits; its state, status and result are the job's documents (storage/).
 */
export interface TrainValueFunctionDeps extends PipelineDeps {
  /** The compute backend in use, for the status document. */
  backend: string;
  /** Aborted (SIGTERM): the job writes a final checkpoint at the next step and stops. */
  signal?: AbortSignal | undefined;
  /** Clock for the status document (tests). */
  now?: () => Date;
  /** The runner's lease in the status document (default DEFAULT_JOB_LEASE_MS), renewed every third of it. */
  leaseMs?: number;
}

export type TrainJobOutcome =
  | { kind: 'done'; checkpoint: ValueFunctionCheckpoint; health: ValueFunctionHealth; resumed: boolean }
  | { kind: 'already-done'; valueFunction: { id: string; version: number } }
  | { kind: 'interrupted'; stage: JobStage; tasksDone: number; evaluationsDone: number };

/** The job spec stored under an id (for `--job-id` without a job file). */
export const loadJobSpec = (store: ObjectStore, id: string): Promise<Result<JobSpec, JobError>> =>
  requireJobDocument(store, id, jobKeys(id).spec, jobSpecSchema);

/** The job's current (highest-seq) state, if it has one. */
export async function loadJobState(store: ObjectStore, id: string): Promise<Result<JobState | undefined, JobError>> {
  const keys = await store.list(jobKeys(id).statePrefix);
  const last = keys.filter((k) => k.endsWith('.json')).pop();
  return last === undefined ? ok(undefined) : readJobDocument(store, id, last, jobStateSchema);
}

/**
 * Runs a training job to the end, or until `signal` aborts it; run again with the same store
 * and id, it resumes from its last checkpoint; once done it changes nothing. The state is
 * written with conditional creates: a second trainer on the same job stops with
 * JOB_STATE_CONFLICT instead of overwriting the first one's progress.
 */
export async function trainValueFunction(
  spec: JobSpec,
  deps: TrainValueFunctionDeps,
): Promise<Result<TrainJobOutcome, JobError>> {
  const resolved = resolveRunConfig(spec);
  if (!resolved.ok) return resolved;
  const { store } = deps;
  const keys = jobKeys(spec.id);
  const now = deps.now ?? (() => new Date());

  const stored = await storeJobSpec(store, spec.id, spec, jobSpecSchema, () => loadJobSpec(store, spec.id));
  if (!stored.ok) return stored;
  const latest = await loadJobState(store, spec.id);
  if (!latest.ok) return latest;
  const resume = latest.value;
  if (resume?.stage === 'done' && resume.valueFunction) {
    // A trainer killed between its last state and its status write left the status behind: repair only that.
    const status = await readJobStatus(store, spec.id);
    if (!status.ok || status.value.state !== 'done') {
      const o = resume.observations;
      await writeJobStatus(
        store,
        trainingStatus(
          {
            jobId: spec.id,
            backend: status.ok ? status.value.backend : deps.backend,
            startedAt: status.ok ? status.value.startedAt : resume.updatedAt,
            updatedAt: resume.updatedAt,
          },
          {
            state: 'done',
            stage: 'done',
            tasks: { done: resume.trajectories.tasksDone, total: resume.trajectories.tasks },
            evaluations: { total: o.total, sent: o.done, perTask: o.perTask, failed: o.failures.length },
            heldOut: resume.heldOut,
            valueFunction: resume.valueFunction,
          },
        ),
      );
    }
    return ok({
      kind: 'already-done',
      valueFunction: { id: resume.valueFunction.id, version: resume.valueFunction.version },
    });
  }

  const previous = await readJobStatus(store, spec.id);
  const startedAt = previous.ok ? previous.value.startedAt : now().toISOString();
  let seq = resume?.seq ?? 0;
  let stageStart = { stage: '' as string, at: performance.now(), done: 0 };
  let last: JobStatus | undefined = previous.ok ? previous.value : undefined;

  // A running job's document carries its lease, renewed by a heartbeat while this runner lives
  // (past it, `jobs status` shows the job stalled); a finished one has none. Writes go out in
  // order, so a heartbeat never lands after a later state.
  const leaseMs = deps.leaseMs ?? DEFAULT_JOB_LEASE_MS;
  let chain: Promise<void> = Promise.resolve();
  const writeStatus = (s: JobStatus): Promise<void> => {
    const { leaseExpiresAt: _, ...rest } = s;
    const leased = new Date(now().getTime() + leaseMs).toISOString();
    const doc: JobStatus = rest.state === 'running' ? { ...rest, leaseExpiresAt: leased } : rest;
    last = doc;
    const written = chain.then(() => writeJobStatus(store, doc));
    chain = written.catch(() => undefined);
    return written;
  };
  const statusOf = (p: JournalProgress, state: JobStatus['state']): JobStatus => {
    if (stageStart.stage !== p.stage) stageStart = { stage: p.stage, at: performance.now(), done: p.stageDone };
    return trainingStatus(
      { jobId: spec.id, backend: deps.backend, startedAt, updatedAt: now().toISOString() },
      {
        state,
        stage: p.stage,
        tasks: { done: p.trajectories.tasksDone, total: p.trajectories.tasks },
        evaluations: {
          total: p.observations.total,
          sent: p.observations.done,
          perTask: p.observations.observations,
          failed: p.observations.failures.length,
        },
        pace: {
          done: p.stageDone - stageStart.done,
          seconds: (performance.now() - stageStart.at) / 1000,
          remaining: p.stageTotal - p.stageDone,
        },
        heldOut: heldOutOf(p.health),
        valueFunction: p.valueFunction,
      },
    );
  };
  let lastProgress: JournalProgress | undefined;

  const journal: PipelineJournal = {
    chunkTasks: spec.checkpoint.chunkTasks,
    queryBatch: spec.checkpoint.queryBatch,
    resume,
    stopRequested: () => deps.signal?.aborted === true,
    saveChunk: (c, bytes) => store.put(keys.chunk(c), bytes),
    loadChunk: (c) => store.get(keys.chunk(c)),
    async stashResult(checkpoint) {
      // An interrupted run fitted (and maybe saved) it already: its content and createdAt are kept.
      return unwrap(await stashJobResult(store, spec.id, 'training', checkpoint));
    },
    async save(p) {
      lastProgress = p;
      const state: JobState = {
        format: 'metricopt.job-state',
        schemaVersion: 1,
        jobId: spec.id,
        seq: seq + 1,
        updatedAt: now().toISOString(),
        stage: p.stage,
        modelFingerprint: p.modelFingerprint,
        trajectories: p.trajectories,
        observations: {
          done: p.observations.done,
          total: p.observations.total,
          perTask: p.observations.observations.map((list) => list.map((o) => [o.step, o.value] as [number, number])),
          failures: p.observations.failures,
        },
        valueFunction: p.valueFunction,
        heldOut: heldOutOf(p.health),
      };
      if (!(await store.putIfAbsent(keys.state(state.seq), JSON.stringify(jobStateSchema.parse(state))))) {
        throw new JobError(
          'JOB_STATE_CONFLICT',
          `job '${spec.id}': another trainer wrote state ${state.seq} first; this one stops`,
        );
      }
      seq = state.seq;
      // Keep the current state and the one before it.
      const old = (await store.list(keys.statePrefix)).filter((k) => k < keys.state(seq - 1));
      for (const k of old) await store.delete(k);
      await writeStatus(statusOf(p, p.stage === 'done' ? 'done' : deps.signal?.aborted ? 'interrupted' : 'running'));
    },
  };

  // Running from the start: a new job has a status (and a lease) before pre-training ends.
  await writeStatus(
    last === undefined
      ? jobStatus(
          { jobId: spec.id, backend: deps.backend, startedAt, updatedAt: now().toISOString() },
          { tasks: { done: 0, total: resolved.value.metaTrain.trajectories.tasks } },
        )
      : { ...last, state: 'running', backend: deps.backend, etaSeconds: null, updatedAt: now().toISOString() },
  );
  const heartbeat = setInterval(() => {
    if (last?.state === 'running') writeStatus({ ...last, updatedAt: now().toISOString() }).catch(() => undefined);
  }, leaseMs / 3);
  heartbeat.unref?.();

  /** A failed run's status (JOB_STATE_CONFLICT: another runner owns the job and its status). */
  const recordFailure = async (e: unknown): Promise<void> => {
    const lastError = lastErrorOf(e);
    if (lastError.code === 'JOB_STATE_CONFLICT') return;
    const base =
      last ??
      jobStatus(
        { jobId: spec.id, backend: deps.backend, startedAt },
        { tasks: { done: 0, total: resolved.value.metaTrain.trajectories.tasks } },
      );
    await writeStatus({
      ...base,
      state: 'failed',
      etaSeconds: null,
      lastError,
      updatedAt: now().toISOString(),
    });
  };
  let outcome: PipelineOutcome;
  try {
    const noisy = withLabelNoise(deps.dataset, resolved.value);
    outcome = noisy.ok
      ? await runTrainingPipeline(
          {
            cfg: resolved.value,
            checkpointId: spec.output.valueFunctionId,
            queryJobId: spec.id,
            perChunkSeeds: spec.fanOut,
          },
          { ...deps, dataset: noisy.value },
          journal,
        )
      : { kind: 'failed', error: noisy.error };
  } catch (e) {
    await recordFailure(e);
    throw e;
  } finally {
    clearInterval(heartbeat);
  }
  if (outcome.kind === 'failed') {
    // LABEL_NOISE_NEEDS_GROUP, META_TRAIN_NO_DATA: the failed status, then the error to the worker loop, as a thrown one.
    await recordFailure(outcome.error);
    throw outcome.error;
  }
  if (outcome.kind === 'stopped') {
    if (lastProgress) await writeStatus({ ...statusOf(lastProgress, 'interrupted'), etaSeconds: null });
    return ok({
      kind: 'interrupted',
      stage: outcome.stage,
      tasksDone: outcome.tasksDone,
      evaluationsDone: outcome.evaluationsDone,
    });
  }
  outcome.model.dispose();
  return ok({ kind: 'done', checkpoint: outcome.checkpoint, health: outcome.health, resumed: resume !== undefined });
}
