import type { SparseDataset } from '../data/dataset.js';
import { Rng } from '../util/random.js';

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
