import type { ObjectStore } from '../../ports/object-store.port.js';
import { type FitJobSpec, fitJobSpecSchema } from '../../schemas/job.js';
import { err, ok, type Result } from '../../util/result.js';
import { jobKeys } from '../../storage/layout.js';
import { requireJobDocument, storeJobSpec } from '../../storage/job-documents.js';
import { JobError } from '../../storage/job-errors.js';
import { issueLine } from '../../schemas/zod-issue.js';

/**
 * Fit job specs in the object store, without the training code (the value API reads and writes
 * these and must not load tfjs); the other documents of a job are those of every job
 * (job-documents.ts).
 */

/** Parses a fit job spec; the message names the first offending field. */
export function parseFitJobSpec(json: unknown, source = 'fit job'): Result<FitJobSpec, JobError> {
  const parsed = fitJobSpecSchema.safeParse(json);
  if (!parsed.success) {
    return err(new JobError('JOB_SPEC_INVALID', `${source}: ${issueLine(parsed.error, '(root)')}`));
  }
  return ok(parsed.data);
}

/** The fit job stored under an id (JOB_SPEC_MISMATCH when it is a training job). */
export const loadFitJobSpec = (store: ObjectStore, id: string): Promise<Result<FitJobSpec, JobError>> =>
  requireJobDocument(store, id, jobKeys(id).spec, fitJobSpecSchema, (json) =>
    (json as { format?: unknown } | null)?.format === 'metricopt.fit-job'
      ? undefined
      : new JobError('JOB_SPEC_MISMATCH', `job '${id}' is not a fit job`),
  );

/** Stores a fit job's spec (once); the same spec again is fine, another one under the id is JOB_SPEC_MISMATCH. */
export const createFitJob = (store: ObjectStore, spec: FitJobSpec): Promise<Result<FitJobSpec, JobError>> =>
  storeJobSpec(store, spec.id, spec, fitJobSpecSchema, () => loadFitJobSpec(store, spec.id));

/** Where a fit job's observation batches live. */
export const observationsPrefix = (spec: FitJobSpec): string =>
  spec.observations.prefix ?? jobKeys(spec.id).observationsPrefix;
