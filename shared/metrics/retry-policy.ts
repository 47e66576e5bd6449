import type { Result } from '../util/result.js';
import { evaluateChecked, type MetricValue } from './checked-evaluator.js';
import type { MetricError } from './errors.js';
import type { EvaluationInput, Evaluator } from '../ports/evaluator.port.js';

/**
 * One retry policy for every evaluator call, queued or in-process: a failure another call may
 * not repeat (a throw, a timeout) is tried again up to `attempts` calls in all; an answer that
 * another call would repeat (NaN or out of range, or an input no evaluator can score) is final
 * at once. The queue applies it through its deliveries (maxReceiveCount), the rest here.
 */
export const EVALUATOR_ATTEMPTS = 3;

export function isTransientFailure(code: string): boolean {
  return code !== 'EVALUATOR_INVALID_VALUE' && code !== 'METRIC_INPUT_INVALID';
}

export async function evaluateWithRetries(
  evaluator: Evaluator,
  input: EvaluationInput,
  options: { attempts?: number; timeoutMs?: number } = {},
): Promise<Result<MetricValue, MetricError>> {
  const attempts = Math.max(1, options.attempts ?? EVALUATOR_ATTEMPTS);
  let last: Result<MetricValue, MetricError> | undefined;
  for (let i = 0; i < attempts; i++) {
    last = await evaluateChecked(evaluator, input, options.timeoutMs ?? 0);
    if (last.ok || !isTransientFailure(last.error.code)) return last;
  }
  return last as Result<MetricValue, MetricError>;
}
