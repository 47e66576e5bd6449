import { Rng } from '../util/random.js';
import type { SparseDataset } from './dataset.js';

export interface Split {
  train: Int32Array;
  val: Int32Array;
  test: Int32Array;
}

/** Seeded random split of all rows (default 70/10/20, the paper's protocol). */
export function splitRows(rows: number, seed: number, fractions: [number, number, number] = [0.7, 0.1, 0.2]): Split {
  const order = new Rng(seed).shuffle(Int32Array.from({ length: rows }, (_, i) => i));
  const total = fractions[0] + fractions[1] + fractions[2];
  const nTrain = Math.round((rows * fractions[0]) / total);
  const nVal = Math.round((rows * fractions[1]) / total);
  return {
    train: order.slice(0, nTrain).sort(),
    val: order.slice(nTrain, nTrain + nVal).sort(),
    test: order.slice(nTrain + nVal).sort(),
  };
}

/** Concatenates data sets with the same feature space (e.g. a9a train + test files). */
export function concatDatasets(name: string, parts: SparseDataset[]): SparseDataset {
  const features = Math.max(...parts.map((p) => p.features));
  const classes = Math.max(...parts.map((p) => p.classes));
  const rows = parts.reduce((s, p) => s + p.rows, 0);
  const nnz = parts.reduce((s, p) => s + p.indices.length, 0);
  const indptr = new Int32Array(rows + 1);
  const indices = new Int32Array(nnz);
  const values = new Float32Array(nnz);
  const labels = new Int32Array(rows);
  let r0 = 0;
  let p0 = 0;
  for (const p of parts) {
    for (let r = 0; r < p.rows; r++) indptr[r0 + r + 1] = p0 + (p.indptr[r + 1] as number);
    indices.set(p.indices, p0);
    values.set(p.values, p0);
    labels.set(p.labels, r0);
    r0 += p.rows;
    p0 += p.indices.length;
  }
  return { name, rows, features, indptr, indices, values, labels, classes };
}
