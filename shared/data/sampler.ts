import type { Rng } from '../util/random.js';

/**
 * Class-balanced mini-batches: each batch draws (with replacement) the same number of rows
 * from every class present, so a rare positive class is seen as often as the majority.
 */
export class BalancedSampler {
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
