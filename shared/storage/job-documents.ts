import type { z } from 'zod';
import { getText, type ObjectStore } from '../ports/object-store.port.js';
import { type JobStage, type JobState, type JobStatus, jobStatusSchema } from '../schemas/job.js';
import type { ValueFunctionHealth } from '../schemas/job-result.js';
import { err, ok, type Result } from '../util/result.js';
import { JobError } from './job-errors.js';
import { JOBS_PREFIX, jobKeys } from './layout.js';
import { healthyOf } from './value-function-store.js';
import { issueLine } from '../schemas/zod-issue.js';

/**
 * The job repository: the documents every job keeps in the object store (layout.ts names their
 * keys), training job or fit job, each read and written through its zod schema, without the
 * training code (the value API and the CLI read these and must not load tfjs).
 */

/**
 * A job's JSON document parsed with its schema: undefined when absent, JOB_STATE_INVALID (naming
 * the document and the first problem) when it is not JSON or not valid. `check` sees the JSON
 * first and may refuse it with its own error (a spec of the other kind of job).
 */
export async function readJobDocument<S extends z.ZodType>(
  store: ObjectStore,
  id: string,
  key: string,
  schema: S,
  check?: (json: unknown) => JobError | undefined,
): Promise<Result<z.output<S> | undefined, JobError>> {
  const text = await getText(store, key);
  if (text === undefined) return ok(undefined);
  const name = key.startsWith(`${JOBS_PREFIX}${id}/`) ? key.slice(`${JOBS_PREFIX}${id}/`.length) : key;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return err(new JobError('JOB_STATE_INVALID', `job '${id}': stored ${name} is not JSON`));
  }
  const refused = check?.(json);
  if (refused) return err(refused);
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return err(new JobError('JOB_STATE_INVALID', `job '${id}': stored ${name} is invalid: ${issueLine(parsed.error)}`));
  }
  return ok(parsed.data);
}

/** A document that must be there: JOB_NOT_FOUND when it is not. */
export async function requireJobDocument<S extends z.ZodType>(
  store: ObjectStore,
  id: string,
  key: string,
  schema: S,
  check?: (json: unknown) => JobError | undefined,
): Promise<Result<z.output<S>, JobError>> {
  const read = await readJobDocument(store, id, key, schema, check);
  if (!read.ok) return read;
  // The store's location is not named: the message may reach an API client.
  if (read.value === undefined) return err(new JobError('JOB_NOT_FOUND', `no job '${id}'`));
  return ok(read.value);
}

/** The job's status document (either kind of job). */
export const readJobStatus = (store: ObjectStore, id: string): Promise<Result<JobStatus, JobError>> =>
  requireJobDocument(store, id, jobKeys(id).status, jobStatusSchema);

/** How long a runner's lease in its status document lasts without a heartbeat (renewed every third of it). */
export const DEFAULT_JOB_LEASE_MS = 60_000;

/**
 * The state to show for a status document: a `running` job whose lease expired is `stalled`
 * (its runner was killed: nobody renews the document); a document without a lease (older
 * writers, fan-out jobs on the queue, which SQS redelivers) is shown as written.
 */
export function shownJobState(status: JobStatus, now: Date = new Date()): JobStatus['state'] | 'stalled' {
  const lease = status.leaseExpiresAt === undefined ? Number.NaN : Date.parse(status.leaseExpiresAt);
  return status.state === 'running' && lease < now.getTime() ? 'stalled' : status.state;
}

/** Who runs the job, since when, and the time of this document (default: startedAt). */
export interface StatusBase {
  jobId: string;
  backend: string;
  startedAt: string;
  updatedAt?: string;
}

/**
 * A status document: a running job with nothing done yet, then `fields`. Every writer builds
 * its documents from this one base.
 */
export function jobStatus(base: StatusBase, fields: Partial<JobStatus> = {}): JobStatus {
  return {
    format: 'metricopt.job-status',
    schemaVersion: 1,
    jobId: base.jobId,
    state: 'running',
    stage: 'pretrain',
    tasks: { done: 0, total: 0 },
    evaluations: { total: 0, sent: 0, returned: 0, failed: 0 },
    heldOut: null,
    etaSeconds: null,
    backend: base.backend,
    lastError: null,
    valueFunction: null,
    startedAt: base.startedAt,
    updatedAt: base.updatedAt ?? base.startedAt,
    ...fields,
  };
}

/** The held-out figures of a fitted value function as the job's documents hold them. */
export function heldOutOf(health: ValueFunctionHealth | null): JobState['heldOut'];
/** ... with the health flag (a fit job's status document). */
export function heldOutOf(health: ValueFunctionHealth | null, withHealthy: true): JobStatus['heldOut'];
export function heldOutOf(health: ValueFunctionHealth | null, withHealthy = false): JobStatus['heldOut'] {
  if (!health) return null;
  const heldOut = {
    mae: health.heldOutMae,
    constantMae: health.constantMae,
    spearman: health.spearman,
    observations: health.heldOutObservations,
  };
  return withHealthy ? { ...heldOut, healthy: healthyOf(health.spearman) } : heldOut;
}

/** What a training job has done, as its status document counts it. */
export interface TrainingProgress {
  state: JobStatus['state'];
  stage: JobStage;
  tasks: { done: number; total: number };
  /** Metric queries: of `total`, `sent`, the observations that came back per task, and `failed`. */
  evaluations: { total: number; sent: number; perTask: readonly (readonly unknown[])[]; failed: number };
  /** The pace for the ETA: `done` units in `seconds`, `remaining` to go; absent, no ETA (null). */
  pace?: { done: number; seconds: number; remaining: number } | undefined;
  heldOut?: JobStatus['heldOut'];
  valueFunction?: { id: string; version: number } | null;
}

/**
 * A training job's status document at a point of its progress (a job run in one process, the
 * trainer workers of a fanned-out job, a status repaired from the journal): a done job's ETA is
 * 0, a running one's the remaining units at the pace so far (null before there is a pace).
 */
export function trainingStatus(base: StatusBase, p: TrainingProgress): JobStatus {
  const pace = p.pace;
  const eta = pace && pace.done > 0 ? (pace.seconds / pace.done) * pace.remaining : null;
  return jobStatus(base, {
    state: p.state,
    stage: p.stage,
    tasks: p.tasks,
    evaluations: {
      total: p.evaluations.total,
      sent: p.evaluations.sent,
      returned: p.evaluations.perTask.reduce((a, list) => a + list.length, 0),
      failed: p.evaluations.failed,
    },
    heldOut: p.heldOut ?? null,
    etaSeconds: p.state === 'done' ? 0 : eta,
    valueFunction: p.valueFunction ? { id: p.valueFunction.id, version: p.valueFunction.version } : null,
  });
}

/** A status document's `lastError` for a thrown error (its code when it has one). */
export function lastErrorOf(e: unknown): NonNullable<JobStatus['lastError']> {
  const error = e as { code?: unknown; message?: unknown } | null;
  return {
    code: typeof error?.code === 'string' ? error.code : 'INTERNAL',
    message: String(error?.message ?? e).slice(0, 500),
  };
}

/** Writes a status document (checked); `ifAbsent`: only when the job has none yet. */
export async function writeJobStatus(
  store: ObjectStore,
  status: JobStatus,
  options: { ifAbsent?: boolean } = {},
): Promise<void> {
  const text = `${JSON.stringify(jobStatusSchema.parse(status))}\n`;
  const key = jobKeys(status.jobId).status;
  if (options.ifAbsent) await store.putIfAbsent(key, text);
  else await store.put(key, text);
}

/**
 * Stores a job's spec once (canonical JSON through its schema): the same spec again is fine,
 * another one under the id is JOB_SPEC_MISMATCH and changes nothing.
 */
export async function storeJobSpec<S extends z.ZodType>(
  store: ObjectStore,
  id: string,
  spec: z.output<S>,
  schema: S,
  load: () => Promise<Result<z.output<S>, JobError>>,
): Promise<Result<z.output<S>, JobError>> {
  const canonical = (s: unknown) => JSON.stringify(schema.parse(s));
  if (await store.putIfAbsent(jobKeys(id).spec, `${canonical(spec)}\n`)) return ok(spec);
  const stored = await load();
  if (!stored.ok) return stored;
  if (canonical(stored.value) !== canonical(spec)) {
    return err(new JobError('JOB_SPEC_MISMATCH', `job '${id}' was created with another spec; use another id`));
  }
  return ok(stored.value);
}
