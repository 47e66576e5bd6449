import type { SparseDataset } from '../data/dataset.js';
import { Rng } from '../util/random.js';
import { standardise } from '../util/standardise.js';
import { MetricError } from './errors.js';
import type { EvaluationInput } from '../ports/evaluator.port.js';

/** Per-row context columns over a whole data set: `columns[name][r]` belongs to dataset row r. */
export type ContextColumns = Readonly<Record<string, Float64Array>>;

/** Labels of scored rows with, when known, their dataset rows and context (a registered split's shape). */
export interface ScoredRows {
  labels: Int32Array;
  classes: number;
  rows?: Int32Array;
  context?: Readonly<Record<string, Float64Array>>;
}

/**
 * The evaluator's input for scores on some rows: their labels, rows and context when known, and
 * the model's embeddings of those rows when given.
 */
export function evaluationInput(
  scores: Float32Array,
  on: ScoredRows,
  embeddings?: EvaluationInput['embeddings'],
): EvaluationInput {
  return {
    scores,
    labels: on.labels,
    classes: on.classes,
    ...(on.rows ? { rows: on.rows } : {}),
    ...(on.context ? { context: on.context } : {}),
    ...(embeddings ? { embeddings } : {}),
  };
}

/** What an evaluator is told about the given dataset rows: their labels, the rows, their context. */
export function scoredRows(
  ds: Pick<SparseDataset, 'labels' | 'classes' | 'context'>,
  rows: Int32Array,
  labels?: Int32Array,
): ScoredRows {
  return {
    labels: labels ?? Int32Array.from(rows, (r) => ds.labels[r] as number),
    classes: ds.classes,
    rows,
    ...(ds.context ? { context: sliceContext(ds.context, rows) } : {}),
  };
}

/** The columns of `context` at the given dataset rows, in their order (what an evaluator receives). */
export function sliceContext(context: ContextColumns, rows: Int32Array): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = {};
  for (const [name, col] of Object.entries(context)) out[name] = Float64Array.from(rows, (r) => col[r] as number);
  return out;
}

/**
 * The fixed, documented rules that derive the context columns of the built-in context metrics
 * from a data set's features, so every run (and every reviewer) gets the same numbers:
 * - `amount` (instance cost): a_i = exp(clip(z_i, -2, 2)), z_i the row's features projected on
 *   a fixed random direction r ~ N(0, I) drawn from Rng(AMOUNT_SEED), standardised over all rows
 *   of the data set (mean 0, std 1);
 * - `value` (top-5 % value): the same rule with a second direction, Rng(VALUE_SEED);
 * - `group`: 1 where feature column `groupFeature` (0-based) is non-zero, else 0 (a9a: column 71,
 *   "female", 33 % of rows, positive rate 11 % against 31 %).
 */
export const AMOUNT_SEED = 19_001;
export const VALUE_SEED = 19_002;
export const CONTEXT_COLUMNS = ['amount', 'value', 'group'] as const;
export type DerivedColumn = (typeof CONTEXT_COLUMNS)[number];

/** z: the standardised projection of every row on a random direction from Rng(seed). */
export function standardisedProjection(ds: SparseDataset, seed: number): Float64Array {
  const r = new Rng(seed).normals(ds.features, 1);
  const z = new Float64Array(ds.rows);
  for (let i = 0; i < ds.rows; i++) {
    let s = 0;
    for (let p = ds.indptr[i] as number; p < (ds.indptr[i + 1] as number); p++) {
      s += (ds.values[p] as number) * (r[ds.indices[p] as number] as number);
    }
    z[i] = s;
  }
  return standardise(z);
}

function clippedExp(z: Float64Array): Float64Array {
  return Float64Array.from(z, (v) => Math.exp(Math.min(2, Math.max(-2, v))));
}

/** One derived column by its rule (see above); `group` needs `groupFeature`. */
export function deriveColumn(ds: SparseDataset, name: DerivedColumn, groupFeature?: number): Float64Array {
  if (name === 'amount') return clippedExp(standardisedProjection(ds, AMOUNT_SEED));
  if (name === 'value') return clippedExp(standardisedProjection(ds, VALUE_SEED));
  if (
    groupFeature === undefined ||
    !Number.isInteger(groupFeature) ||
    groupFeature < 0 ||
    groupFeature >= ds.features
  ) {
    throw new MetricError(
      'METRIC_INPUT_INVALID',
      `the group column needs --group-feature, a feature column 0..${ds.features - 1}; got ${groupFeature}`,
      { reason: 'group-feature', groupFeature },
    );
  }
  const g = new Float64Array(ds.rows);
  for (let i = 0; i < ds.rows; i++) {
    for (let p = ds.indptr[i] as number; p < (ds.indptr[i + 1] as number); p++) {
      if (ds.indices[p] === groupFeature && ds.values[p] !== 0) g[i] = 1;
    }
  }
  return g;
}

/**
 * The data set with the named columns added to its context (columns it already carries, e.g.
 * from a user's context file, are kept as they are).
 */
export function withDerivedContext(ds: SparseDataset, names: readonly string[], groupFeature?: number): SparseDataset {
  const context: Record<string, Float64Array> = { ...(ds.context ?? {}) };
  for (const name of names) {
    if (context[name]) continue;
    if (!(CONTEXT_COLUMNS as readonly string[]).includes(name)) {
      throw new MetricError(
        'METRIC_INPUT_INVALID',
        `context column '${name}' is neither in the data set's context nor derivable (${CONTEXT_COLUMNS.join(', ')})`,
        { reason: 'context-missing', column: name },
      );
    }
    context[name] = deriveColumn(ds, name as DerivedColumn, groupFeature);
  }
  return { ...ds, context };
}

/** The named column of an evaluation input, checked: present and one value per scored row. */
export function contextColumn(metric: string, input: EvaluationInput, column: string): Float64Array {
  const col = input.context?.[column];
  if (!col) {
    throw new MetricError(
      'METRIC_INPUT_INVALID',
      `${metric} needs the per-row context column '${column}' (derived by its rule, or given with --context)`,
      { reason: 'context-missing', column },
    );
  }
  if (col.length !== input.labels.length) {
    throw new MetricError(
      'METRIC_INPUT_INVALID',
      `${metric}: context column '${column}' has ${col.length} values for ${input.labels.length} rows`,
      { reason: 'length', expected: input.labels.length, actual: col.length },
    );
  }
  return col;
}

/**
 * Training labels with one-sided noise in one group (the label-noise cell): each positive
 * training row of group 1 becomes negative with probability `rate` (seeded), every other row
 * (and every validation / test row) keeps its label.
 */
export function groupLabelNoise(
  labels: Int32Array,
  group: Float64Array,
  trainRows: Int32Array,
  rate: number,
  seed: number,
): Int32Array {
  const out = Int32Array.from(labels);
  const rng = new Rng(seed * 31 + 19);
  for (const r of trainRows) {
    if (group[r] === 1 && out[r] === 1 && rng.next() < rate) out[r] = 0;
  }
  return out;
}
