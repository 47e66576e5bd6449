import type { FitErrorCode } from '../../shared/error-codes.js';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** HTTP statuses of the fit routes' codes (merged into errors.ts's table). */
export const fitStatusByCode = {
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
  VALUE_FUNCTION_OWNED: 409,
  VALUE_FUNCTION_MISMATCH: 409,
  // Not expected at this edge (a stored document the API did not write, a trainer's state race,
  // a job cancelled under a trainer): answered as 500 INTERNAL and logged, like any fault.
  JOB_SPEC_NOT_JSON: null,
  JOB_STATE_CONFLICT: null,
  JOB_STATE_INVALID: null,
  JOB_CANCELLED: null,
} satisfies Record<FitErrorCode, ContentfulStatusCode | null>;
