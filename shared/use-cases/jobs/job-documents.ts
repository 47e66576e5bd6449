import type { z } from 'zod';
import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import { type JobStatus, jobStatusSchema } from '../../schemas/job.js';
import { err, ok, type Result } from '../../util/result.js';
import { JobError } from './job-errors.js';

/**
 * The documents every job keeps in the object store, training job or fit job, without the
 * training code (the value API and the CLI read these and must not load tfjs):
 *
 *   jobs/<id>/job.json           the spec
 *   jobs/<id>/status.json        the status document (jobStatusSchema), rewritten as it runs
 *   jobs/<id>/result.json        the fitted content, stashed before it is saved as a version
 *   jobs/<id>/state/<seq>.json   a training job's journal (conditional creates)
 *   jobs/<id>/trajectories/...   a training job's trajectory chunks
 */
export const JOBS_PREFIX = 'jobs/';
export const jobKeys = (id: string) => ({
  spec: `${JOBS_PREFIX}${id}/job.json`,
  status: `${JOBS_PREFIX}${id}/status.json`,
  result: `${JOBS_PREFIX}${id}/result.json`,
  statePrefix: `${JOBS_PREFIX}${id}/state/`,
  state: (seq: number) => `${JOBS_PREFIX}${id}/state/${String(seq).padStart(8, '0')}.json`,
  chunk: (c: number) => `${JOBS_PREFIX}${id}/trajectories/${String(c).padStart(6, '0')}.f32`,
});

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
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    return err(
      new JobError('JOB_STATE_INVALID', `job '${id}': stored ${name} is invalid: ${where}${issue?.message ?? ''}`),
    );
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

/**
 * A status document: a running job with nothing done yet, then `fields`. Every writer builds
 * its documents from this one base.
 */
export function jobStatus(
  base: { jobId: string; backend: string; startedAt: string; updatedAt?: string },
  fields: Partial<JobStatus> = {},
): JobStatus {
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
