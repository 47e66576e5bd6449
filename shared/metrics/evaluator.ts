import { MetricError } from './errors.js';

/**
 * The black-box metric contract. An evaluator sees predictions and labels only, never the model.
 * `scores` holds positive-class probabilities for binary tasks (length n) and per-class
 * probabilities, row-major n x classes, for multi-class ones.
 */
export interface EvaluationInput {
  readonly scores: Float32Array;
  readonly labels: Int32Array;
  /** 2 for binary tasks. */
  readonly classes: number;
  /**
   * Which rows are scored: `rows[i]` is the 0-based index, in the dataset as loaded (a9a: the
   * train file's rows, then the test file's; other files: line order), of the row scored by
   * `scores[i]` / `labels[i]`. Lets a metric depend on who is scored (costs per row, groups,
   * queries). Every built-in path sets it (in process, worker thread, evaluation queue, webhook,
   * Lambda, fit jobs: test/evaluation/row-context.test.ts); it stays optional in the type so that
   * hand-written callers and older evaluators keep working.
   */
  readonly rows?: Int32Array;
  /**
   * Named per-row numeric columns the user supplied with the dataset (`--context FILE`), sliced
   * to the same rows as `scores`/`labels`: `context[name][i]` belongs to row `rows[i]`.
   */
  readonly context?: Readonly<Record<string, Float64Array>>;
  /**
   * The output kind `embedding`, beside the probabilities in `scores`: one L2-normalised
   * `dim`-vector per scored row, row-major (`values[i * dim .. (i + 1) * dim)` belongs to
   * `labels[i]`), for retrieval metrics (`recall-at-K`). Given to evaluators whose `outputs`
   * include 'embedding'.
   */
  readonly embeddings?: { readonly dim: number; readonly values: Float32Array };
}

/** What a model hands an evaluator: class probabilities (always) and, on request, embeddings. */
export type OutputKind = 'probabilities' | 'embedding';

export type Direction = 'minimize' | 'maximize';

export interface Evaluator {
  readonly name: string;
  readonly direction: Direction;
  /** Version string reported with each result (user modules may set it). */
  readonly version?: string;
  /** The output kinds it reads (absent: probabilities only); 'embedding' asks for `input.embeddings`. */
  readonly outputs?: readonly OutputKind[];
  /**
   * Returns the metric in its natural direction, within [0, 1]. `options.signal` is aborted when
   * the caller's deadline passes (evaluateChecked); an evaluator that can stop early (a worker
   * thread, a request) should.
   */
  evaluate(input: EvaluationInput, options?: EvaluateOptions): number | Promise<number>;
}

export interface EvaluateOptions {
  signal?: AbortSignal;
}

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
  if (input.embeddings !== undefined) {
    const { dim, values } = input.embeddings;
    if (!Number.isInteger(dim) || dim < 1 || values.length !== n * dim) {
      return new MetricError(
        'METRIC_INPUT_INVALID',
        `${name}: ${values.length} embedding values for ${n} labels of dimension ${dim}`,
        { reason: 'embedding', expected: n * dim, actual: values.length },
      );
    }
    for (let i = 0; i < n; i++) {
      let norm = 0;
      for (let j = i * dim; j < (i + 1) * dim; j++) norm += (values[j] as number) * (values[j] as number);
      if (!(Math.abs(Math.sqrt(norm) - 1) <= 1e-3)) {
        return new MetricError(
          'METRIC_INPUT_INVALID',
          `${name}: embedding ${i} has norm ${Math.sqrt(norm)}, not 1 (embeddings are L2-normalised)`,
          { reason: 'embedding', index: i },
        );
      }
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
