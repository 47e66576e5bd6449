import type { SparseDataset } from '../data/dataset.js';
import { Rng } from '../util/random.js';
import { standardise } from '../util/standardise.js';
import { ModelError } from './errors.js';

/**
 * The low-rank input-to-logit adapter term (issue 19): logit_i += LOW_RANK_SCALE x u . s_i,
 * with s_i = V x_i, V a fixed random matrix (rank x features, N(0, 1) entries from
 * Rng(seed)), each of the `rank` projected columns standardised over all rows (mean 0, std 1),
 * and u (rank entries of phi) the adapter's parameters. Unlike input or output dynamic biases,
 * which add the same constant for every row, u . s_i shifts each row's decision by an amount
 * that depends on its features: what a metric with per-row costs wants. With rank = features
 * the span of V is the whole input space (any linear shift w . x is reachable).
 */
export const LOW_RANK_SEED = 19_019;

/** Logit units per unit of u . s / sqrt(rank): u ~ N(0, 1) then shifts a row's logit by about 1. */
export const LOW_RANK_SCALE = 1;

/** s = standardised V x for every row (rows x rank, row-major). */
export function lowRankFeatures(ds: SparseDataset, rank: number, seed = LOW_RANK_SEED): Float32Array {
  const rng = new Rng(seed);
  const v = rng.normals(rank * ds.features, 1);
  const s = new Float64Array(ds.rows * rank);
  for (let i = 0; i < ds.rows; i++) {
    for (let p = ds.indptr[i] as number; p < (ds.indptr[i + 1] as number); p++) {
      const col = ds.indices[p] as number;
      const x = ds.values[p] as number;
      for (let k = 0; k < rank; k++)
        s[i * rank + k] = (s[i * rank + k] as number) + x * (v[k * ds.features + col] as number);
    }
  }
  const out = new Float32Array(ds.rows * rank);
  for (let k = 0; k < rank; k++) {
    let mean = 0;
    for (let i = 0; i < ds.rows; i++) mean += s[i * rank + k] as number;
    mean /= Math.max(1, ds.rows);
    let sq = 0;
    for (let i = 0; i < ds.rows; i++) sq += ((s[i * rank + k] as number) - mean) ** 2;
    const sd = Math.sqrt(sq / Math.max(1, ds.rows)) || 1;
    // 1/sqrt(rank): the term's spread per unit-norm u does not grow with the rank.
    const f = 1 / (sd * Math.sqrt(rank));
    for (let i = 0; i < ds.rows; i++) out[i * rank + k] = ((s[i * rank + k] as number) - mean) * f;
  }
  return out;
}

/**
 * The context adapter's features (`--adapter context`): one column per named context column of
 * the data set, in the given order, each read on a log scale when all its values are positive
 * (amounts, values: the per-row Bayes rule for a cost a_i shifts the logit by log a_i) and as is
 * otherwise (a 0/1 group), then standardised over all rows (mean 0, std 1; a constant column
 * stays 0). u . s_i is then a decision shift by the row's context: the rules the headroom
 * oracles search (shared/report/headroom.ts) are points of this family.
 */
export function contextLogitFeatures(ds: SparseDataset, columns: readonly string[]): Float32Array {
  const k = columns.length;
  const out = new Float32Array(ds.rows * k);
  columns.forEach((name, c) => {
    const col = ds.context?.[name];
    if (!col || col.length !== ds.rows) {
      throw new ModelError(
        'CONTEXT_ADAPTER_NO_CONTEXT',
        `the context adapter reads context column '${name}', which this data set does not carry (give it with --context, or a metric that derives it)`,
        { column: name },
      );
    }
    const log = col.every((v) => v > 0);
    const x = standardise(Float64Array.from(col, (v) => (log ? Math.log(v) : v)));
    for (let i = 0; i < ds.rows; i++) out[i * k + c] = x[i] as number;
  });
  return out;
}

/** The context columns the context adapter reads: all of the data set's, by name (a stable order). */
export function contextLogitColumns(ds: SparseDataset): string[] {
  const columns = Object.keys(ds.context ?? {}).sort();
  if (columns.length === 0) {
    throw new ModelError(
      'CONTEXT_ADAPTER_NO_CONTEXT',
      '--adapter context needs per-row context columns: give them with --context FILE, or use a metric that derives its own (instance-cost, top5-value, group-balanced-error) or --group-feature',
      { reason: 'no-context' },
    );
  }
  return columns;
}
