/**
 * A labelled data set held as compressed sparse rows (CSR), the natural form of LIBSVM data.
 * Dense views are built on demand; the frozen first layer of the MLP consumes CSR directly.
 */
export interface SparseDataset {
  readonly name: string;
  readonly rows: number;
  readonly features: number;
  /** Row pointers, length rows + 1. */
  readonly indptr: Int32Array;
  /** 0-based column of each stored value. */
  readonly indices: Int32Array;
  readonly values: Float32Array;
  /** Class per row: 0/1 for binary data, 0..classes-1 otherwise. */
  readonly labels: Int32Array;
  readonly classes: number;
  /**
   * Optional per-row context columns (`context[name][r]` belongs to row r): costs, groups,
   * values a metric may depend on; sliced to the scored rows for an evaluator (issue 19).
   */
  readonly context?: Readonly<Record<string, Float64Array>>;
}

/** Row-major dense copy (rows x features). */
export function toDense(ds: SparseDataset, rowIds?: ArrayLike<number>): Float32Array {
  const ids = rowIds ?? Int32Array.from({ length: ds.rows }, (_, i) => i);
  const out = new Float32Array(ids.length * ds.features);
  for (let r = 0; r < ids.length; r++) {
    const row = ids[r] as number;
    const end = ds.indptr[row + 1] as number;
    for (let p = ds.indptr[row] as number; p < end; p++) {
      out[r * ds.features + (ds.indices[p] as number)] = ds.values[p] as number;
    }
  }
  return out;
}

/** Builds a data set from a dense row-major matrix (used for image data and tests). */
export function fromDense(
  name: string,
  x: Float32Array,
  features: number,
  labels: Int32Array,
  classes: number,
): SparseDataset {
  const rows = labels.length;
  const indptr = new Int32Array(rows + 1);
  const idx: number[] = [];
  const val: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < features; c++) {
      const v = x[r * features + c] as number;
      if (v !== 0) {
        idx.push(c);
        val.push(v);
      }
    }
    indptr[r + 1] = idx.length;
  }
  return {
    name,
    rows,
    features,
    indptr,
    indices: Int32Array.from(idx),
    values: Float32Array.from(val),
    labels,
    classes,
  };
}

export function positiveRate(labels: ArrayLike<number>): number {
  let pos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) pos++;
  return labels.length === 0 ? 0 : pos / labels.length;
}
