/** Stable codes of the expected failures of serving (serve-guidance.ts, value-function-catalog.ts). */
export const ServeErrorCode = {
  valueFunctionNotFound: 'VALUE_FUNCTION_NOT_FOUND',
  versionNotFound: 'VERSION_NOT_FOUND',
  dimensionMismatch: 'DIMENSION_MISMATCH',
  emptyBatch: 'EMPTY_BATCH',
  notFinite: 'NOT_FINITE',
  tooManyRows: 'TOO_MANY_ROWS',
  /** A listed checkpoint version that cannot be served (truncated, schema-invalid, or not compilable). */
  checkpointInvalid: 'CHECKPOINT_INVALID',
} as const;
