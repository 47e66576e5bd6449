import { describe, expect, it } from 'vitest';
import { reptileEta, reptileInterpolate } from '../../shared/method/reptile.js';
import { fisherMasks, fisherRatio, hardestPair, selectHardPairs } from '../../shared/method/value-function-loss.js';

describe('reptileInterpolate', () => {
  it('moves w a fraction eta of the way to the adapted weights', () => {
    const w = [Float32Array.from([0, 2]), Float32Array.from([1])];
    const adapted = [Float32Array.from([1, 0]), Float32Array.from([3])];
    const out = reptileInterpolate(w, adapted, 0.25);
    expect(Array.from(out[0]!)).toEqual([0.25, 1.5]);
    expect(Array.from(out[1]!)).toEqual([1.5]);
    expect(Array.from(reptileInterpolate(w, adapted, 1)[0]!)).toEqual([1, 0]);
    expect(Array.from(reptileInterpolate(w, adapted, 0)[0]!)).toEqual([0, 2]);
  });
  it('decays eta linearly from eta0 to 0', () => {
    expect(reptileEta(1, 0, 4)).toBe(1);
    expect(reptileEta(1, 2, 4)).toBe(0.5);
    expect(reptileEta(1, 4, 4)).toBe(0);
  });
});

describe('fisherMasks', () => {
  // Steps 0,1 close (metric 0.10, 0.11), step 2 far (0.30); std 0.01 everywhere.
  const labels = { mean: Float32Array.from([0.1, 0.11, 0.3]), std: Float32Array.from([0.01, 0.01, 0.01]) };
  it('splits positives (r < 2) from negatives (r >= 2)', () => {
    expect(fisherRatio(0.1, 0.01, 0.11, 0.01)).toBeCloseTo(0.5);
    const m = fisherMasks(labels);
    // anchor 0: 1 is a positive (r = 0.5), 2 a negative (r = 200)
    expect(Array.from(m.positive.slice(0, 3))).toEqual([0, 1, 0]);
    expect(Array.from(m.negative.slice(0, 3))).toEqual([0, 0, 1]);
    // anchor 2 has no positive: skipped
    expect(Array.from(m.valid)).toEqual([1, 1, 0]);
  });
  it('mines the farthest positive and the closest negative', () => {
    const four = { mean: Float32Array.from([0.1, 0.1, 0.1, 0.5]), std: Float32Array.from([0.01, 0.01, 0.01, 0.01]) };
    const m = fisherMasks(four);
    // embedding distances from anchor 0: to 1 -> 1, to 2 -> 3, to 3 -> 2
    const dist = Float64Array.from([0, 1, 3, 2, 1, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0]);
    expect(hardestPair(dist, m, 0, 4)).toEqual([2, 3]);
    const emb = Float32Array.from([0, 0, 1, 0, 3, 0, 2, 0]); // 1-D positions 0, 1, 3, 2 (E = 2)
    const pairs = selectHardPairs(emb, 2, [m], 4);
    expect(pairs.posIndex[0]).toBe(2);
    expect(pairs.negIndex[0]).toBe(3);
    expect(pairs.valid[0]).toBe(1);
    expect(pairs.valid[3]).toBe(0);
  });
});
