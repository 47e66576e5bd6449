import type { Rng } from '../util/random.js';

/** Draws mini-batches of row ids. */
export interface Sampler {
  /** Fills out[offset .. offset + size) with row ids. */
  sampleInto(rng: Rng, out: Int32Array, offset?: number, size?: number): void;
}

/**
 * Class-balanced mini-batches: each batch draws (with replacement) the same number of rows
 * from every class present, so a rare positive class is seen as often as the majority.
 */
export class BalancedSampler implements Sampler {
  private readonly byClass: Int32Array[];

  constructor(rowIds: Int32Array, labels: Int32Array, classes: number) {
    const buckets: number[][] = Array.from({ length: classes }, () => []);
    for (const r of rowIds) buckets[labels[r] as number]?.push(r);
    this.byClass = buckets.filter((b) => b.length > 0).map((b) => Int32Array.from(b));
    if (this.byClass.length === 0) throw new Error('BalancedSampler: no rows');
  }

  /** Fills `out` (length = batch size) with row ids, classes interleaved. */
  sampleInto(rng: Rng, out: Int32Array, offset = 0, size = out.length - offset): void {
    const k = this.byClass.length;
    for (let i = 0; i < size; i++) {
      const bucket = this.byClass[i % k] as Int32Array;
      out[offset + i] = bucket[rng.int(bucket.length)] as number;
    }
  }

  sample(rng: Rng, size: number): Int32Array {
    const out = new Int32Array(size);
    this.sampleInto(rng, out);
    return out;
  }
}

/** Natural-frequency mini-batches: rows drawn uniformly (with replacement), classes as they come. */
export class NaturalSampler implements Sampler {
  constructor(private readonly rowIds: Int32Array) {
    if (rowIds.length === 0) throw new Error('NaturalSampler: no rows');
  }

  sampleInto(rng: Rng, out: Int32Array, offset = 0, size = out.length - offset): void {
    for (let i = 0; i < size; i++) out[offset + i] = this.rowIds[rng.int(this.rowIds.length)] as number;
  }
}

/** Share of each class among the given rows (the natural prior). */
export function classPrior(rowIds: Int32Array, labels: Int32Array, classes: number): Float64Array {
  const prior = new Float64Array(classes);
  for (const r of rowIds) prior[labels[r] as number] = (prior[labels[r] as number] as number) + 1 / rowIds.length;
  return prior;
}
