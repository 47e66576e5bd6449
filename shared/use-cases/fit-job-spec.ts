import { getText, type ObjectStore } from '../ports/object-store.port.js';
import { type FitJobSpec, fitJobSpecSchema, type JobStatus, jobStatusSchema } from '../schemas/job.js';
import { err, ok, type Result } from '../util/result.js';
import { JobError } from './job-errors.js';
import { observationPrefixOf } from './observation-batches.js';

/**
 * Fit job specs and status documents in the object store, without the training code (the value
 * API reads and writes these and must not load tfjs). The keys are those of every job
 * (`jobKeys` in train-value-function.ts): `jobs/<id>/job.json`, `status.json`, `result.json`.
 */
export const fitJobKeys = (id: string) => ({
  spec: `jobs/${id}/job.json`,
  status: `jobs/${id}/status.json`,
  result: `jobs/${id}/result.json`,
  started: `jobs/${id}/started.json`,
});

/** The status document of a job (as `readJobStatus` reads it), or JOB_NOT_FOUND before it runs. */
export async function readFitJobStatus(store: ObjectStore, id: string): Promise<Result<JobStatus, JobError>> {
  const text = await getText(store, fitJobKeys(id).status);
  if (text === undefined) return err(new JobError('JOB_NOT_FOUND', `no status of job '${id}' in ${store.location}`));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return err(new JobError('JOB_STATE_INVALID', `job '${id}': status.json is not JSON`));
  }
  const parsed = jobStatusSchema.safeParse(json);
  if (!parsed.success) return err(new JobError('JOB_STATE_INVALID', `job '${id}': status.json is invalid`));
  return ok(parsed.data);
}

const canonical = (spec: FitJobSpec) => JSON.stringify(fitJobSpecSchema.parse(spec));

/** Parses a fit job spec; the message names the first offending field. */
export function parseFitJobSpec(json: unknown, source = 'fit job'): Result<FitJobSpec, JobError> {
  const parsed = fitJobSpecSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.length ? issue.path.join('.') : '(root)';
    return err(new JobError('JOB_SPEC_INVALID', `${source}: ${path}: ${issue?.message ?? 'invalid'}`));
  }
  return ok(parsed.data);
}

/** The fit job stored under an id. */
export async function loadFitJobSpec(store: ObjectStore, id: string): Promise<Result<FitJobSpec, JobError>> {
  const text = await getText(store, fitJobKeys(id).spec);
  if (text === undefined) return err(new JobError('JOB_NOT_FOUND', `no job '${id}' in ${store.location}`));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return err(new JobError('JOB_STATE_INVALID', `job '${id}': stored job.json is not JSON`));
  }
  if ((json as { format?: unknown } | null)?.format !== 'metricopt.fit-job') {
    return err(new JobError('JOB_SPEC_MISMATCH', `job '${id}' in ${store.location} is not a fit job`));
  }
  const parsed = fitJobSpecSchema.safeParse(json);
  if (!parsed.success) return err(new JobError('JOB_STATE_INVALID', `job '${id}': stored job.json is invalid`));
  return ok(parsed.data);
}

/** Stores a fit job's spec (once); the same spec again is fine, another one under the id is JOB_SPEC_MISMATCH. */
export async function createFitJob(store: ObjectStore, spec: FitJobSpec): Promise<Result<FitJobSpec, JobError>> {
  if (await store.putIfAbsent(fitJobKeys(spec.id).spec, `${canonical(spec)}\n`)) return ok(spec);
  const stored = await loadFitJobSpec(store, spec.id);
  if (!stored.ok) return stored;
  if (canonical(stored.value) !== canonical(spec)) {
    return err(
      new JobError(
        'JOB_SPEC_MISMATCH',
        `job '${spec.id}' in ${store.location} was created with a different spec; use another id`,
      ),
    );
  }
  return ok(stored.value);
}

/** Where a fit job's observation batches live. */
export const observationsPrefix = (spec: FitJobSpec): string =>
  spec.observations.prefix ?? observationPrefixOf(spec.id);
