import type { DataErrorCode } from './data/errors.js';
import type { CmaEsErrorCode } from './method/cma-es.js';
import type { MetricErrorCode } from './metrics/errors.js';
import type { EvaluationErrorCode } from './schemas/evaluation.js';
import type { ModelErrorCode } from './models/errors.js';
import type { JobErrorCode } from './storage/job-errors.js';
import type { FitJobStartErrorCode } from './use-cases/byom/fit-job-api.js';
import type { OwnershipErrorCode } from './use-cases/byom/fit-ownership.js';
import type { ObservationErrorCode } from './use-cases/byom/observation-batches.js';
import type { ServeErrorCode } from './use-cases/serving/serve-errors.js';
import type { UseCaseErrorCode } from './use-cases/training/errors.js';

/**
 * Every stable error code of the core, by the feature that raises it: the edges map them
 * (the value API's status table, the CLI's exit codes) and can ask the compiler for a decision
 * on each (`satisfies Record<ServingErrorCode | FitErrorCode, Status>`).
 */

/** Serving value functions (predict, gradient, guide, describe). */
export type ServingErrorCode = (typeof ServeErrorCode)[keyof typeof ServeErrorCode];

/** Fit jobs (bring your own model): uploads, start, ownership and the job documents. */
export type FitErrorCode = ObservationErrorCode | FitJobStartErrorCode | OwnershipErrorCode | JobErrorCode;

/** Training and evaluation: data, models, metrics, the evaluation queue, the method, the use-cases. */
export type TrainingErrorCode =
  | DataErrorCode
  | ModelErrorCode
  | MetricErrorCode
  | EvaluationErrorCode
  | CmaEsErrorCode
  | UseCaseErrorCode
  | JobErrorCode;

export type DomainErrorCode = ServingErrorCode | FitErrorCode | TrainingErrorCode;
