import { describe, expect, it } from 'vitest';
import { cholesky, fitGp, gpPosterior, linearInterpolation, rbf } from '../../shared/method/gp.js';

describe('gpPosterior', () => {
  it('equals the closed-form posterior on a two-point case', () => {
    const h = { lengthScale: 0.5, signalVariance: 2, noiseVariance: 0.1 };
    const xs = [0, 1];
    const ys = [1, 3];
    const m0 = 2;
    // Closed form: K = [[s+n, k],[k, s+n]], mean(x*) = m0 + k*^T K^-1 (y - m0).
    const k = 2 * Math.exp(-0.5 * (1 / 0.5) ** 2);
    const a = 2 + 0.1;
    const det = a * a - k * k;
    const inv = [a / det, -k / det, -k / det, a / det];
    const x = 0.25;
    const ks = [2 * Math.exp(-0.5 * (0.25 / 0.5) ** 2), 2 * Math.exp(-0.5 * (0.75 / 0.5) ** 2)];
    const yc = [-1, 1];
    const alpha = [inv[0]! * yc[0]! + inv[1]! * yc[1]!, inv[2]! * yc[0]! + inv[3]! * yc[1]!];
    const mean = m0 + ks[0]! * alpha[0]! + ks[1]! * alpha[1]!;
    const v = [inv[0]! * ks[0]! + inv[1]! * ks[1]!, inv[2]! * ks[0]! + inv[3]! * ks[1]!];
    const variance = 2 - (ks[0]! * v[0]! + ks[1]! * v[1]!);

    const post = gpPosterior(xs, ys, [x], h, m0);

    expect(post.mean[0]).toBeCloseTo(mean, 10);
    expect(post.variance[0]).toBeCloseTo(variance, 10);
  });

  it('interpolates noise-free observations almost exactly', () => {
    const fit = fitGp([0, 10, 25, 40, 50], [0.3, 0.25, 0.2, 0.22, 0.21], 50);
    expect(fit.mean[0]).toBeCloseTo(0.3, 2);
    expect(fit.mean[25]).toBeCloseTo(0.2, 2);
    expect(fit.mean).toHaveLength(51);
    expect(Math.min(...fit.std)).toBeGreaterThanOrEqual(1e-3);
    // Uncertainty is larger between observations than at them.
    expect(fit.std[33]!).toBeGreaterThan(fit.std[25]!);
  });
});

describe('cholesky', () => {
  it('factors a positive-definite matrix and rejects an indefinite one', () => {
    const a = Float64Array.from([4, 2, 2, 3]);
    const l = cholesky(a, 2)!;
    expect(l[0]! * l[0]!).toBeCloseTo(4);
    expect(l[2]! * l[0]!).toBeCloseTo(2);
    expect(l[2]! ** 2 + l[3]! ** 2).toBeCloseTo(3);
    expect(cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toBeUndefined();
  });
  it('rbf is the squared-exponential kernel', () => {
    expect(rbf(0, 1, 1, 2)).toBeCloseTo(2 * Math.exp(-0.5));
  });
});

describe('linearInterpolation', () => {
  it('interpolates between observations and holds the ends', () => {
    const fit = linearInterpolation([0, 4], [1, 3], 4);
    expect(Array.from(fit.mean)).toEqual([1, 1.5, 2, 2.5, 3]);
  });
});
