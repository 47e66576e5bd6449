import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import type { FitJobSpec, JobStatus } from '../../schemas/job.js';
import type { FitLabels } from '../../schemas/observations.js';
import { DomainError, err, ok, type Result } from '../../util/result.js';
import { checkPredictionRefs, putFitLabels, putFitPredictions, readFitLabels } from './fit-inputs.js';
import { loadFitJobSpec, observationsPrefix } from './fit-job-spec.js';
import { checkPublishable, type OwnershipError } from './fit-ownership.js';
import { JOBS_PREFIX, jobKeys } from '../../storage/layout.js';
import { jobStatus, readJobStatus, shownJobState, writeJobStatus } from '../../storage/job-documents.js';
import type { JobError } from '../../storage/job-errors.js';
import {
  addObservationBatch,
  type BatchOutcome,
  loadObservationSet,
  observationCounts,
  ObservationSetCache,
  trajectoriesOf,
} from './observation-store.js';
import type { ObservationError, StoredObservation } from './observation-batches.js';
import { type FitStarted, fitCancelSchema, fitStartedSchema } from '../../schemas/job-markers.js';
import type { FitLauncher } from '../../ports/fit.port.js';

/**
 * The life of a fit job as the API drives it: created (spec stored), observations uploaded in
 * batches (and labels and predictions for lines scored by an evaluator), started once (a marker `jobs/<id>/started.json`, then the launcher: a message on the
 * jobs queue or a run in this process), then the status document of `runFitJob`.
 */
/** Parsed observation sets, per store (a summary then reads only the batches added since). */
const caches = new WeakMap<ObjectStore, ObservationSetCache>();
function cacheOf(store: ObjectStore): ObservationSetCache {
  let cache = caches.get(store);
  if (cache === undefined) {
    cache = new ObservationSetCache();
    caches.set(store, cache);
  }
  return cache;
}

export type FitJobState = 'created' | 'queued' | 'stalled' | JobStatus['state'];

export interface FitJobSummary {
  jobId: string;
  valueFunctionId: string;
  state: FitJobState;
  uploads: {
    observations: number;
    trajectories: number;
    d: number | null;
    /** Lines scored by an evaluator when the fit runs, the labels and predictions uploaded for them. */
    predictionLines: number;
    labels: { n: number; classes: number } | null;
    predictions: number;
  };
  startedVia: 'queue' | 'in-process' | null;
  /** The job's status document once it runs (jobStatusSchema). */
  status: JobStatus | null;
}

export type FitJobStartErrorCode = 'FIT_JOB_STARTED' | 'FIT_JOBS_UNAVAILABLE';

export class FitJobStartedError extends DomainError<FitJobStartErrorCode> {
  constructor(id: string, unavailable?: string) {
    super(
      unavailable === undefined ? 'FIT_JOB_STARTED' : 'FIT_JOBS_UNAVAILABLE',
      unavailable === undefined
        ? `fit job '${id}' has started; observations can no longer be added (create another job)`
        : `fit job '${id}' cannot start here: ${unavailable}`,
    );
    this.name = 'FitJobStartedError';
  }
}

/**
 * The state a client sees: the status document's, except that a job cancelled is `cancelled`
 * (whatever its runner last wrote), and a `running` job whose lease expired is `stalled` (its
 * runner was killed; start re-queues it).
 */
function shownState(doc: JobStatus | null, started: boolean, cancelled: boolean, now: Date): FitJobState {
  if (cancelled && doc?.state !== 'done') return 'cancelled';
  if (doc === null) return started ? 'queued' : 'created';
  return shownJobState(doc, now);
}

export async function fitJobSummary(
  store: ObjectStore,
  id: string,
  now: () => Date = () => new Date(),
): Promise<Result<FitJobSummary, JobError>> {
  const spec = await loadFitJobSpec(store, id);
  if (!spec.ok) return spec;
  // Independent reads, at once: on a busy server each read waits its turn for a thread and the
  // CPU, and one after another they made the tail of this GET (bench/RESULTS.md, issue 23).
  const keys = jobKeys(id);
  const [counts, started, status, labels, predictionKeys, cancelled] = await Promise.all([
    observationCounts(store, observationsPrefix(spec.value), cacheOf(store)),
    getText(store, keys.started),
    readJobStatus(store, id),
    readFitLabels(store, id),
    store.list(keys.predictionsPrefix),
    store.get(keys.cancel),
  ]);
  const via = started === undefined ? null : fitStartedSchema.parse(JSON.parse(started)).via;
  const doc = status.ok ? status.value : null;
  const predictions = predictionKeys.length;
  return ok({
    jobId: id,
    valueFunctionId: spec.value.output.valueFunctionId,
    state: shownState(doc, via !== null, cancelled !== undefined, now()),
    uploads: {
      observations: counts.observations,
      trajectories: counts.trajectories,
      d: counts.d ?? null,
      predictionLines: counts.predictionLines,
      labels: labels === undefined ? null : { n: labels.labels.length, classes: labels.classes },
      predictions,
    },
    startedVia: via,
    status: doc,
  });
}

/** The job's spec while it takes uploads: it exists and has not started. */
async function openForUploads(
  store: ObjectStore,
  id: string,
): Promise<Result<FitJobSpec, JobError | FitJobStartedError>> {
  const spec = await loadFitJobSpec(store, id);
  if (!spec.ok) return spec;
  if ((await store.get(jobKeys(id).started)) !== undefined) return err(new FitJobStartedError(id));
  return spec;
}

/** Adds an uploaded batch (already parsed and checked line by line) to a job that has not started. */
export async function uploadObservations(
  store: ObjectStore,
  id: string,
  batch: readonly StoredObservation[],
  source: string,
): Promise<Result<BatchOutcome, JobError | ObservationError | FitJobStartedError>> {
  const spec = await openForUploads(store, id);
  if (!spec.ok) return spec;
  return addObservationBatch(store, observationsPrefix(spec.value), batch, source, undefined, cacheOf(store));
}

/** Stores a job's labels (predictions are scored on them), before it starts. */
export async function uploadLabels(
  store: ObjectStore,
  id: string,
  labels: FitLabels,
): Promise<Result<{ n: number; classes: number; created: boolean }, JobError | ObservationError | FitJobStartedError>> {
  const spec = await openForUploads(store, id);
  if (!spec.ok) return spec;
  return putFitLabels(store, id, labels);
}

/** Stores one named set of float32 predictions for lines to reference, before the job starts. */
export async function uploadPredictions(
  store: ObjectStore,
  id: string,
  key: string,
  bytes: Uint8Array,
): Promise<
  Result<{ key: string; values: number; created: boolean }, JobError | ObservationError | FitJobStartedError>
> {
  const spec = await openForUploads(store, id);
  if (!spec.ok) return spec;
  return putFitPredictions(store, id, key, bytes);
}

/**
 * Starts a job once: the uploaded set must be fittable (else nothing changes); a second start
 * answers the summary and launches nothing.
 */
export async function startFitJob(
  store: ObjectStore,
  id: string,
  launcher: FitLauncher,
  now: () => Date = () => new Date(),
): Promise<
  Result<
    { summary: FitJobSummary; started: boolean },
    JobError | ObservationError | FitJobStartedError | OwnershipError
  >
> {
  const spec = await loadFitJobSpec(store, id);
  if (!spec.ok) return spec;
  if ((await store.get(jobKeys(id).cancel)) !== undefined) {
    const summary = await fitJobSummary(store, id, now);
    return summary.ok ? ok({ summary: summary.value, started: false }) : summary;
  }
  const fresh = (await store.get(jobKeys(id).started)) === undefined;
  if (fresh && launcher.unavailable !== undefined) return err(new FitJobStartedError(id, launcher.unavailable));
  if (!fresh && launcher.unavailable === undefined) {
    // Started before: launched again only when its runner is gone (a stalled lease, or queued
    // in a server process that was stopped before it ran).
    const before = await fitJobSummary(store, id, now);
    if (!before.ok) return before;
    if (before.value.state === 'stalled' || (await queuedAndOrphaned(store, id, launcher, now))) {
      await launcher.launch(spec.value);
      const summary = await fitJobSummary(store, id, now);
      return summary.ok ? ok({ summary: summary.value, started: true }) : summary;
    }
  }
  if (fresh) {
    const set = await loadObservationSet(store, observationsPrefix(spec.value));
    const checked = trajectoriesOf(set, `fit job '${id}'`, 'count');
    if (!checked.ok) return checked;
    const refs = await checkPredictionRefs(store, id, set);
    if (!refs.ok) return refs;
    const publishable = await checkPublishable(store, spec.value.output.valueFunctionId, spec.value.metric, set.d);
    if (!publishable.ok) return publishable;
    const marker = JSON.stringify({ via: launcher.via, at: now().toISOString() } satisfies FitStarted);
    if (await store.putIfAbsent(jobKeys(id).started, marker)) await launcher.launch(spec.value);
  }
  const summary = await fitJobSummary(store, id);
  if (!summary.ok) return summary;
  return ok({ summary: summary.value, started: fresh });
}

/**
 * At a server's start: every started fit job whose runner is gone (a `stalled` lease, or queued
 * in a server process that stopped before running it) is launched again on `launcher`, as
 * `start` would; jobs running elsewhere, finished or cancelled are left alone. Answers the ids
 * launched. Lists the jobs once (their start markers).
 */
export async function restartOrphanedFitJobs(
  store: ObjectStore,
  launcher: FitLauncher,
  now: () => Date = () => new Date(),
): Promise<string[]> {
  const suffix = '/started.json';
  const ids = (await store.list(JOBS_PREFIX))
    .filter((k) => k.endsWith(suffix) && !k.slice(JOBS_PREFIX.length, -suffix.length).includes('/'))
    .map((k) => k.slice(JOBS_PREFIX.length, -suffix.length));
  const launched: string[] = [];
  for (const id of ids) {
    const r = await startFitJob(store, id, launcher, now);
    if (r.ok && r.value.started) launched.push(id);
  }
  return launched;
}

/**
 * A job started in a server process (in-process launcher) that has no status document yet while
 * this launcher has never seen it: the process that queued it was stopped before it ran.
 */
async function queuedAndOrphaned(
  store: ObjectStore,
  id: string,
  launcher: FitLauncher,
  now: () => Date,
): Promise<boolean> {
  if (launcher.via !== 'in-process' || launcher.knows?.(id) === true) return false;
  if ((await readJobStatus(store, id)).ok) return false;
  const marker = await getText(store, jobKeys(id).started);
  const at = marker === undefined ? Number.NaN : Date.parse(fitStartedSchema.parse(JSON.parse(marker)).at ?? '');
  return marker !== undefined && !(at > now().getTime());
}

/**
 * Cancels a job: records the cancellation (a runner stops on it, a queued job never runs),
 * stops it if this process runs it, and answers the summary. A job that is done stays done.
 */
export async function cancelFitJob(
  store: ObjectStore,
  id: string,
  launcher: FitLauncher,
  now: () => Date = () => new Date(),
): Promise<Result<FitJobSummary, JobError>> {
  const before = await fitJobSummary(store, id, now);
  if (!before.ok) return before;
  if (before.value.state === 'done' || before.value.state === 'failed') return before;
  await store.putIfAbsent(
    jobKeys(id).cancel,
    `${JSON.stringify(fitCancelSchema.parse({ at: now().toISOString() }))}\n`,
  );
  await launcher.cancel?.(id);
  return fitJobSummary(store, id, now);
}

/**
 * Writes a job's final state for a runner that could not (terminated: cancelled, out of
 * budget, crashed): its last status document with the state, without a lease.
 */
export async function endFitJob(
  store: ObjectStore,
  id: string,
  state: 'failed' | 'cancelled',
  lastError?: { code: string; message: string },
  now: () => Date = () => new Date(),
): Promise<void> {
  const read = await readJobStatus(store, id);
  const at = now().toISOString();
  const base = read.ok
    ? read.value
    : jobStatus({ jobId: id, backend: 'none', startedAt: at }, { stage: 'observations' });
  const { leaseExpiresAt: _, ...rest } = base;
  await writeJobStatus(store, { ...rest, state, updatedAt: at, ...(lastError ? { lastError } : {}) });
}
