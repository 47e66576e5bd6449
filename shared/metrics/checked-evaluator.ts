import { err, ok, type Result } from '../util/result.js';
import { MetricError } from './errors.js';
import type { EvaluationInput, Evaluator } from '../ports/evaluator.port.js';
import { checkEvaluationInput, normalise } from './evaluator.js';

export interface MetricValue {
  /** Natural direction, as the evaluator returned it. */
  value: number;
  /** Lower is better, in [0, 1]. */
  normalised: number;
  durationMs: number;
}

/**
 * Runs an evaluator and turns every way it can misbehave (throws, rejects, times out, returns
 * NaN / Infinity / a value outside [0, 1]) into a structured MetricError; such a value is never
 * fed to the value function. The input is checked first (checkEvaluationInput): no evaluator,
 * built-in or user, ever sees a NaN score, an out-of-range label or mismatched lengths, and one
 * whose `outputs` include 'embedding' is never called without embeddings.
 */
export async function evaluateChecked(
  evaluator: Evaluator,
  input: EvaluationInput,
  timeoutMs = 0,
): Promise<Result<MetricValue, MetricError>> {
  const invalid = checkEvaluationInput(evaluator.name, input);
  if (invalid !== undefined) return err(invalid);
  if (evaluator.outputs?.includes('embedding') && input.embeddings === undefined) {
    return err(
      new MetricError(
        'METRIC_INPUT_INVALID',
        `evaluator '${evaluator.name}' reads embeddings (outputs: 'embedding') and the caller gave none`,
        { reason: 'embedding' },
      ),
    );
  }
  const start = performance.now();
  let raw: unknown;
  const deadline = timeoutMs > 0 ? new AbortController() : undefined;
  try {
    const pending = Promise.resolve(evaluator.evaluate(input, deadline ? { signal: deadline.signal } : {}));
    raw = deadline ? await withTimeout(pending, timeoutMs, evaluator.name, deadline) : await pending;
  } catch (e) {
    if (e instanceof MetricError) return err(e);
    const message = e instanceof Error ? e.message : String(e);
    return err(new MetricError('EVALUATOR_FAILED', `evaluator '${evaluator.name}' threw: ${message}`));
  }
  if (typeof raw !== 'number' || !Number.isFinite(raw)) {
    return err(
      new MetricError(
        'EVALUATOR_INVALID_VALUE',
        `evaluator '${evaluator.name}' returned ${String(raw)}, not a finite number`,
      ),
    );
  }
  if (raw < 0 || raw > 1) {
    return err(
      new MetricError('EVALUATOR_INVALID_VALUE', `evaluator '${evaluator.name}' returned ${raw}, outside [0, 1]`),
    );
  }
  return ok({ value: raw, normalised: normalise(raw, evaluator.direction), durationMs: performance.now() - start });
}

/**
 * `p`, or EVALUATOR_TIMEOUT after `ms`, when `deadline` is also aborted. The race alone cannot
 * interrupt an evaluator's synchronous code (the timer never fires while it runs): an evaluator
 * run in a worker thread (shared/adapters/evaluator-module.worker-thread.ts) ends on the abort.
 */
async function withTimeout<T>(p: Promise<T>, ms: number, name: string, deadline: AbortController): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new MetricError('EVALUATOR_TIMEOUT', `evaluator '${name}' did not answer within ${ms} ms`));
      deadline.abort();
    }, ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
