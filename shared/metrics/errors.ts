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
