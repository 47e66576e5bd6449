import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** HTTP statuses of the fit routes' codes (merged into errors.ts's table). */
export const fitStatusByCode: Record<string, ContentfulStatusCode> = {
  OBSERVATIONS_INVALID: 400,
  OBSERVATIONS_EMPTY: 400,
  OBSERVATIONS_INSUFFICIENT: 400,
  OBSERVATION_PREDICTIONS_UNSUPPORTED: 400,
  PREDICTIONS_INVALID: 400,
  PREDICTIONS_CONFLICT: 409,
  OBSERVATIONS_TOO_LARGE: 413,
  OBSERVATIONS_CONFLICT: 409,
  FIT_JOB_STARTED: 409,
  FIT_JOBS_UNAVAILABLE: 503,
  JOB_SPEC_INVALID: 400,
  JOB_SPEC_MISMATCH: 409,
  JOB_NOT_FOUND: 404,
};
