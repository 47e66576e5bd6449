import { domainErrorClass } from '../util/result.js';

export type JobErrorCode =
  /** The job file is not JSON. */
  | 'JOB_SPEC_NOT_JSON'
  /** The job spec does not match the schema, or its settings contradict each other. */
  | 'JOB_SPEC_INVALID'
  /** The store holds a different job under this id. */
  | 'JOB_SPEC_MISMATCH'
  /** No job (or no status) under this id in the store. */
  | 'JOB_NOT_FOUND'
  /** Another trainer wrote this job's state first (two trainers on one job). */
  | 'JOB_STATE_CONFLICT'
  /** The stored state is unreadable, or does not fit the job (e.g. pre-training gave another model). */
  | 'JOB_STATE_INVALID'
  /** The job was cancelled (POST /v1/fit-jobs/{id}/cancel); it does not run. */
  | 'JOB_CANCELLED';

/** A retryable job error comes back on a later delivery: another trainer holds the job, or it was cancelled. */
export const JobError = domainErrorClass<JobErrorCode>('JobError', ['JOB_STATE_CONFLICT', 'JOB_CANCELLED']);
export type JobError = InstanceType<typeof JobError>;
