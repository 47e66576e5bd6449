/** Stable codes of the expected failures of serving (serve-guidance.ts, value-function-catalog.ts, request-bodies.ts). */
export const ServeErrorCode = {
  valueFunctionNotFound: 'VALUE_FUNCTION_NOT_FOUND',
  versionNotFound: 'VERSION_NOT_FOUND',
  dimensionMismatch: 'DIMENSION_MISMATCH',
  emptyBatch: 'EMPTY_BATCH',
  notFinite: 'NOT_FINITE',
  tooManyRows: 'TOO_MANY_ROWS',
  /** A request body that is not UTF-8 JSON (request-bodies.ts). */
  invalidJson: 'INVALID_JSON',
  /** A request body that does not have its route's shape (request-bodies.ts). */
  invalidBody: 'INVALID_BODY',
  /** A listed checkpoint version that cannot be served (truncated, schema-invalid, or not compilable). */
  checkpointInvalid: 'CHECKPOINT_INVALID',
} as const;
