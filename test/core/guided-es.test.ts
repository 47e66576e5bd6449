import { describe, expect, it } from 'vitest';
import {
  guidedEsDirection,
  orthonormalBasis,
  samplePerturbation,
  searchCovariance,
} from '../../shared/method/guided-es.js';
import { Rng } from '../../shared/util/random.js';

describe('orthonormalBasis', () => {
  it('returns orthonormal vectors spanning the inputs and drops dependent ones', () => {
    const a = Float32Array.from([1, 1, 0, 0]);
    const b = Float32Array.from([1, 0, 1, 0]);
    const c = Float32Array.from([2, 1, 1, 0]); // a + b
    const q = orthonormalBasis([a, b, c]);
    expect(q).toHaveLength(2);
    const dot = (x: Float32Array, y: Float32Array) => x.reduce((s, v, i) => s + v * y[i]!, 0);
    expect(dot(q[0]!, q[0]!)).toBeCloseTo(1, 5);
    expect(dot(q[1]!, q[1]!)).toBeCloseTo(1, 5);
    expect(dot(q[0]!, q[1]!)).toBeCloseTo(0, 5);
  });
});

describe('samplePerturbation', () => {
  it('has the covariance s^2 Sigma of Eq. 3', () => {
    const d = 4;
    const basis = orthonormalBasis([Float32Array.from([1, 2, 0, -1]), Float32Array.from([0, 1, 1, 1])]);
    const s2 = 0.01;
    const sigma = searchCovariance(d, basis);
    const rng = new Rng(3);
    const n = 200_000;
    const cov = new Float64Array(d * d);
    const delta = new Float32Array(d);
    for (let i = 0; i < n; i++) {
      samplePerturbation(rng, basis, s2, delta);
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a * d + b]! += (delta[a]! * delta[b]!) / n;
    }
    // Each entry's standard error is about s2 * sqrt(2 / n) * max(Sigma) ~ 1e-5; allow 5e-5.
    for (let i = 0; i < d * d; i++) expect(Math.abs(cov[i]! - s2 * sigma[i]!)).toBeLessThan(5e-5);
    // Eq. 3 itself: Sigma = I / (2d) + U U^T / (2k).
    const u0 = basis[0]!;
    const u1 = basis[1]!;
    expect(sigma[1]).toBeCloseTo((u0[0]! * u0[1]! + u1[0]! * u1[1]!) / 4, 6);
    expect(sigma[0]).toBeCloseTo(1 / 8 + (u0[0]! ** 2 + u1[0]! ** 2) / 4, 6);
  });
});

describe('guidedEsDirection', () => {
  it('has expectation 2 Sigma grad f for a quadratic (statistical test, 6-sigma bound)', () => {
    const d = 6;
    const diagA = [1, 2, 3, 0.5, 4, 1.5];
    const f = (p: Float32Array) => p.reduce((s, v, i) => s + 0.5 * diagA[i]! * v * v, 0) + p[0]! * 0.3;
    const phi = Float32Array.from([0.5, -1, 0.2, 1, -0.3, 0.8]);
    const grad = Array.from(phi, (v, i) => diagA[i]! * v + (i === 0 ? 0.3 : 0));
    const lossGrads = [Float32Array.from([1, 0, 0, 1, 0, 0]), Float32Array.from([0, 1, 1, 0, 0, 1])];
    const basis = orthonormalBasis(lossGrads);
    const sigma = searchCovariance(d, basis);
    const expected = Array.from({ length: d }, (_, i) => 2 * grad.reduce((s, g, j) => s + sigma[i * d + j]! * g, 0));
    const rng = new Rng(11);
    const n = 20_000;
    const sum = new Float64Array(d);
    const sumSq = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      const u = guidedEsDirection(f, phi, lossGrads, { P: 3, sigma2: 0.01 }, rng);
      for (let j = 0; j < d; j++) {
        sum[j]! += u[j]!;
        sumSq[j]! += u[j]! ** 2;
      }
    }
    for (let j = 0; j < d; j++) {
      const m = sum[j]! / n;
      const se = Math.sqrt((sumSq[j]! / n - m * m) / n);
      expect(Math.abs(m - expected[j]!)).toBeLessThan(6 * se + 1e-6);
    }
    // And it points downhill: positive inner product with the true gradient.
    const mean = Array.from(sum, (s) => s / n);
    expect(mean.reduce((s, v, i) => s + v * grad[i]!, 0)).toBeGreaterThan(0);
  });
});
