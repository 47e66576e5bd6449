import { type RowContext, sliceRowContext } from '../data/row-context.js';
import { MetricError } from './errors.js';
import type { EvaluationInput, Evaluator } from './evaluator.js';

/**
 * The user's per-row context (`--context FILE`, whole data set) handed to every evaluation with
 * the rows it scores: an input with `rows` and no `context` gets `context` sliced to those rows.
 * An input without `rows` cannot be given its context: METRIC_INPUT_INVALID, never a metric
 * silently computed without the columns the user supplied.
 */
export function withRowContext(evaluator: Evaluator, context: RowContext): Evaluator {
  // The queries of a split share its rows array: slice once per split, not per query.
  const sliced = new WeakMap<Int32Array, RowContext>();
  return {
    name: evaluator.name,
    direction: evaluator.direction,
    ...(evaluator.version === undefined ? {} : { version: evaluator.version }),
    evaluate(input, options) {
      if (input.context !== undefined) return evaluator.evaluate(input, options);
      let rowContext = input.rows && sliced.get(input.rows);
      if (rowContext === undefined) {
        rowContext = contextForRows(evaluator.name, context, input.rows);
        sliced.set(input.rows as Int32Array, rowContext);
      }
      const withContext: EvaluationInput = { ...input, context: rowContext };
      return evaluator.evaluate(withContext, options);
    },
  };
}

/**
 * The context of the scored rows (`what` names the evaluation in errors); throws
 * METRIC_INPUT_INVALID when there are no rows or one is outside the data set.
 */
export function contextForRows(what: string, context: RowContext, rows: Int32Array | undefined): RowContext {
  const datasetRows = Object.values(context)[0]?.length ?? 0;
  if (rows === undefined) {
    throw new MetricError(
      'METRIC_INPUT_INVALID',
      `${what}: per-row context was supplied but this evaluation does not say which rows it scores (no rows)`,
      { reason: 'rows' },
    );
  }
  const bad = rows.findIndex((r) => r < 0 || r >= datasetRows);
  if (bad >= 0) {
    throw new MetricError(
      'METRIC_INPUT_INVALID',
      `${what}: rows[${bad}] is ${rows[bad]}, outside the ${datasetRows} rows the context covers`,
      { reason: 'rows', index: bad },
    );
  }
  return sliceRowContext(context, rows);
}
