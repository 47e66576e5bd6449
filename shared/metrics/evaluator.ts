import type { Direction, EvaluationInput } from '../ports/evaluator.port.js';
import { MetricError } from './errors.js';

/** Internal convention: lower is better, within [0, 1]. */
export function normalise(value: number, direction: Direction): number {
  return direction === 'maximize' ? 1 - value : value;
}

export function denormalise(normalised: number, direction: Direction): number {
  return direction === 'maximize' ? 1 - normalised : normalised;
}

/**
 * The checks every evaluator call gets before the evaluator sees the input (evaluateChecked):
 * `classes` is an integer of at least 2, the lengths agree (n scores for binary tasks, n x
 * classes otherwise), every score is finite, and every label is a class index (0 or 1 for
 * binary tasks, 0..classes-1 otherwise); when given, `rows` has one non-negative entry per label
 * and every `context` column one value per label. One pass, stopping at the first problem, which
 * it names (METRIC_INPUT_INVALID, `details.reason` one of classes / length / not-finite / label /
 * rows / context).
 */
export function checkEvaluationInput(name: string, input: EvaluationInput): MetricError | undefined {
  const { scores, labels, classes } = input;
  if (!Number.isInteger(classes) || classes < 2) {
    return new MetricError('METRIC_INPUT_INVALID', `${name}: classes must be an integer >= 2, got ${classes}`, {
      reason: 'classes',
    });
  }
  const expected = classes === 2 ? labels.length : labels.length * classes;
  if (scores.length !== expected) {
    return new MetricError(
      'METRIC_INPUT_INVALID',
      `${name}: ${scores.length} scores for ${labels.length} labels and ${classes} classes (expected ${expected})`,
      { reason: 'length', expected, actual: scores.length },
    );
  }
  const n = labels.length;
  if (input.rows !== undefined) {
    if (input.rows.length !== n) {
      return new MetricError('METRIC_INPUT_INVALID', `${name}: ${input.rows.length} rows for ${n} labels`, {
        reason: 'rows',
        expected: n,
        actual: input.rows.length,
      });
    }
    const bad = input.rows.findIndex((r) => r < 0);
    if (bad >= 0) {
      return new MetricError('METRIC_INPUT_INVALID', `${name}: rows[${bad}] is ${input.rows[bad]}, not a row index`, {
        reason: 'rows',
        index: bad,
      });
    }
  }
  for (const [column, values] of Object.entries(input.context ?? {})) {
    if (values.length !== n) {
      return new MetricError(
        'METRIC_INPUT_INVALID',
        `${name}: context column '${column}' has ${values.length} values for ${n} labels`,
        { reason: 'context', column, expected: n, actual: values.length },
      );
    }
  }
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i] as number;
    if (!Number.isFinite(s)) {
      return new MetricError('METRIC_INPUT_INVALID', `${name}: prediction score ${i} is ${s}, not a finite number`, {
        reason: 'not-finite',
        index: i,
      });
    }
  }
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as number;
    if (y < 0 || y >= classes) {
      return new MetricError(
        'METRIC_INPUT_INVALID',
        `${name}: label ${i} is ${y}, outside 0..${classes - 1} for a ${classes}-class task`,
        { reason: 'label', index: i, label: y },
      );
    }
  }
  return undefined;
}
