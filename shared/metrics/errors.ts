import type { EvaluationErrorCode } from '../schemas/evaluation.js';
import { DomainError } from '../util/result.js';

export type MetricErrorCode =
  | 'UNKNOWN_METRIC'
  | 'EVALUATOR_MODULE_INVALID'
  | 'EVALUATOR_FAILED'
  | 'EVALUATOR_INVALID_VALUE'
  | 'EVALUATOR_TIMEOUT'
  | 'METRIC_INPUT_INVALID';

export class MetricError extends DomainError {
  constructor(code: MetricErrorCode, message: string, details?: unknown) {
    super(code, message, details);
    this.name = 'MetricError';
  }
}

/**
 * A failed queued evaluation as the trainer sees it: a MetricError (so the oracle port's type
 * holds) whose `code` is one of the evaluation codes, including those the queue adds.
 */
export class EvaluationError extends MetricError {
  override readonly code: EvaluationErrorCode;

  constructor(code: EvaluationErrorCode, message: string, details?: unknown) {
    super('EVALUATOR_FAILED', message, details);
    this.code = code;
    this.name = 'EvaluationError';
  }
}
