import type { Rng } from '../util/random.js';

/**
 * Guided Evolution Strategies (MetricOpt Eq. 3-4, after Maheswaranathan et al. 2019).
 * The search distribution is N(0, s^2 Sigma) with
 *     Sigma = (1 / (2d)) I + (1 / (2k)) U U^T,
 * U (d x k) an orthonormal basis of the span of the last k loss gradients, and the descent
 * direction is the antithetic estimate
 *     u = 1 / (s^2 P) * sum_i delta_i (f(phi + delta_i) - f(phi - delta_i)).
 * For a quadratic f, E[u] = 2 Sigma grad f exactly (tested). With no gradient yet (k = 0) the
 * search is isotropic, Sigma = I / d.
 */
export interface GuidedEsOptions {
  /** Number of antithetic pairs P (paper: 3). */
  P: number;
  /** Perturbation variance s^2 (paper: 0.01, i.e. s = 0.1). */
  sigma2: number;
}

export const defaultGuidedEs: GuidedEsOptions = { P: 3, sigma2: 0.01 };

/**
 * Orthonormal basis of span(vectors) by modified Gram-Schmidt with one re-orthogonalisation
 * pass (numerically a thin QR); vectors that are (nearly) dependent on earlier ones are dropped.
 */
export function orthonormalBasis(vectors: readonly Float32Array[], tolerance = 1e-6): Float32Array[] {
  const basis: Float64Array[] = [];
  for (const v of vectors) {
    const w = Float64Array.from(v);
    const norm0 = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    if (!(norm0 > 0) || !Number.isFinite(norm0)) continue;
    for (let pass = 0; pass < 2; pass++) {
      for (const q of basis) {
        let dot = 0;
        for (let i = 0; i < w.length; i++) dot += (w[i] as number) * (q[i] as number);
        for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) - dot * (q[i] as number);
      }
    }
    const norm = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    if (norm <= tolerance * norm0) continue;
    for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) / norm;
    basis.push(w);
  }
  return basis.map((b) => Float32Array.from(b));
}

/** The dense search covariance of Eq. 3 (row-major d x d), for tests and diagnostics. */
export function searchCovariance(d: number, basis: readonly Float32Array[]): Float64Array {
  const k = basis.length;
  const sigma = new Float64Array(d * d);
  const iso = k === 0 ? 1 / d : 1 / (2 * d);
  for (let i = 0; i < d; i++) sigma[i * d + i] = iso;
  for (const u of basis) {
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++)
        sigma[i * d + j] = (sigma[i * d + j] as number) + ((u[i] as number) * (u[j] as number)) / (2 * k);
    }
  }
  return sigma;
}

/** Draws delta ~ N(0, s^2 Sigma) into `out`. */
export function samplePerturbation(
  rng: Rng,
  basis: readonly Float32Array[],
  sigma2: number,
  out: Float32Array,
): Float32Array {
  const d = out.length;
  const k = basis.length;
  const s = Math.sqrt(sigma2);
  const iso = s * Math.sqrt(k === 0 ? 1 / d : 1 / (2 * d));
  for (let i = 0; i < d; i++) out[i] = iso * rng.normal();
  if (k > 0) {
    const sub = s * Math.sqrt(1 / (2 * k));
    for (const u of basis) {
      const z = sub * rng.normal();
      for (let i = 0; i < d; i++) out[i] = (out[i] as number) + z * (u[i] as number);
    }
  }
  return out;
}

/**
 * The Guided-ES descent direction u at phi (step with phi <- phi - alpha * u).
 * `score` is the function whose antithetic differences are taken: the value function f, or
 * lambda f + l in the variant that also scores the loss.
 */
export function guidedEsDirection(
  score: (phi: Float32Array) => number,
  phi: Float32Array,
  lossGradients: readonly Float32Array[],
  options: GuidedEsOptions,
  rng: Rng,
): Float32Array {
  const d = phi.length;
  const basis = orthonormalBasis(lossGradients);
  const delta = new Float32Array(d);
  const plus = new Float32Array(d);
  const minus = new Float32Array(d);
  const u = new Float32Array(d);
  for (let p = 0; p < options.P; p++) {
    samplePerturbation(rng, basis, options.sigma2, delta);
    for (let i = 0; i < d; i++) {
      plus[i] = (phi[i] as number) + (delta[i] as number);
      minus[i] = (phi[i] as number) - (delta[i] as number);
    }
    const diff = score(plus) - score(minus);
    for (let i = 0; i < d; i++) u[i] = (u[i] as number) + (delta[i] as number) * diff;
  }
  const scale = 1 / (options.sigma2 * options.P);
  for (let i = 0; i < d; i++) u[i] = (u[i] as number) * scale;
  return u;
}
