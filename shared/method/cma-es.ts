import { Rng } from '../util/random.js';
import { domainErrorClass, err, ok, type Result } from '../util/result.js';

/**
 * CMA-ES, the black-box peer (issue 19, item 5): Hansen's (mu/mu_w, lambda)-CMA-ES as in
 * "The CMA Evolution Strategy: A Tutorial" (2016), with the defaults of Python `cmaes` 0.13.1
 * (checked in test/core/cma-es-crosscheck.e2e.test.ts): weighted recombination, cumulative
 * step-size adaptation, rank-one and rank-mu covariance updates with the tutorial's negative
 * ("active") weights, C = B D^2 B^T by a Jacobi eigensolver every generation. No bounds.
 * Non-finite objective values rank last (NaN is treated as +Infinity).
 */
export type CmaEsErrorCode = 'CMA_ES_INPUT_INVALID';

export const CmaEsError = domainErrorClass<CmaEsErrorCode>('CmaEsError');
export type CmaEsError = InstanceType<typeof CmaEsError>;

/** The strategy parameters (tutorial Table 1, eqs. 48-55); all derive from d and lambda. */
export interface CmaEsParameters {
  d: number;
  /** Population size lambda (default 4 + floor(3 ln d)). */
  lambda: number;
  /** Number of parents mu = floor(lambda / 2). */
  mu: number;
  /** Recombination weights, lambda of them: mu positive (sum 1), the rest zero or negative. */
  weights: Float64Array;
  muEff: number;
  cSigma: number;
  dSigma: number;
  cc: number;
  c1: number;
  cMu: number;
  /** E||N(0, I)||, approximated as in the tutorial. */
  chiN: number;
}

const sum = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0);

export function cmaEsParameters(d: number, lambda = 4 + Math.floor(3 * Math.log(d))): CmaEsParameters {
  const mu = Math.floor(lambda / 2);
  const raw = Array.from({ length: lambda }, (_, i) => Math.log((lambda + 1) / 2) - Math.log(i + 1));
  const pos = raw.slice(0, mu);
  const neg = raw.slice(mu);
  const muEff = sum(pos) ** 2 / sum(pos.map((w) => w * w));
  const muEffMinus = sum(neg) ** 2 / sum(neg.map((w) => w * w));
  const c1 = 2 / ((d + 1.3) ** 2 + muEff);
  const cMu = Math.min(1 - c1 - 1e-8, (2 * (muEff - 2 + 1 / muEff)) / ((d + 2) ** 2 + muEff));
  const alphaMin = Math.min(1 + c1 / cMu, 1 + (2 * muEffMinus) / (muEff + 2), (1 - c1 - cMu) / (d * cMu));
  const posSum = sum(raw.filter((w) => w > 0));
  const negSum = sum(raw.filter((w) => w < 0).map(Math.abs));
  const weights = Float64Array.from(raw, (w) => (w >= 0 ? w / posSum : (alphaMin / negSum) * w));
  const cSigma = (muEff + 2) / (d + muEff + 5);
  const dSigma = 1 + 2 * Math.max(0, Math.sqrt((muEff - 1) / (d + 1)) - 1) + cSigma;
  const cc = (4 + muEff / d) / (d + 4 + (2 * muEff) / d);
  const chiN = Math.sqrt(d) * (1 - 1 / (4 * d) + 1 / (21 * d * d));
  return { d, lambda, mu, weights, muEff, cSigma, dSigma, cc, c1, cMu, chiN };
}

/**
 * Eigen-decomposition of a symmetric n x n matrix (row-major) by cyclic Jacobi rotations:
 * a = V diag(values) V^T, V's columns the eigenvectors (row-major in `vectors`). Unsorted.
 */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const at = (i: number, j: number) => m[i * n + j] as number;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    let all = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        all += at(i, j) ** 2;
        if (i !== j) off += at(i, j) ** 2;
      }
    if (off <= 1e-30 * all) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = at(p, q);
        if (apq === 0) continue;
        const theta = (at(q, q) - at(p, p)) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        const rotate = (x: Float64Array, i: number, j: number) => {
          const xi = x[i] as number;
          const xj = x[j] as number;
          x[i] = c * xi - s * xj;
          x[j] = s * xi + c * xj;
        };
        for (let k = 0; k < n; k++) rotate(m, k * n + p, k * n + q); // columns p, q
        for (let k = 0; k < n; k++) rotate(m, p * n + k, q * n + k); // rows p, q
        for (let k = 0; k < n; k++) rotate(v, k * n + p, k * n + q);
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => at(i, i)), vectors: v };
}

export interface CmaEsOptions {
  /** Seed of the project's Rng (shared/util/random.ts): same seed, same run. */
  seed: number;
  /** lambda; default 4 + floor(3 ln d). */
  populationSize?: number;
}

export interface Evaluated {
  x: Float64Array;
  value: number;
}

const invalid = (message: string) => err(new CmaEsError('CMA_ES_INPUT_INVALID', message));
const rankValue = (v: number) => (Number.isNaN(v) ? Number.POSITIVE_INFINITY : v);

export class CmaEs {
  readonly params: CmaEsParameters;
  private readonly mean: Float64Array;
  private sigma: number;
  private readonly C: Float64Array;
  private B: Float64Array;
  private D: Float64Array;
  private readonly pSigma: Float64Array;
  private readonly pc: Float64Array;
  private g = 0;
  private readonly rng: Rng;

  private constructor(x0: Float64Array, sigma0: number, options: CmaEsOptions) {
    const d = x0.length;
    this.params = cmaEsParameters(d, options.populationSize);
    this.mean = x0;
    this.sigma = sigma0;
    this.C = new Float64Array(d * d);
    for (let i = 0; i < d; i++) this.C[i * d + i] = 1;
    this.B = Float64Array.from(this.C);
    this.D = new Float64Array(d).fill(1);
    this.pSigma = new Float64Array(d);
    this.pc = new Float64Array(d);
    this.rng = new Rng(options.seed);
  }

  /** Validates at the edge: d >= 1, finite x0, finite sigma0 > 0, integer seed, lambda >= 2. */
  static create(x0: ArrayLike<number>, sigma0: number, options: CmaEsOptions): Result<CmaEs, CmaEsError> {
    if (x0.length < 1) return invalid('cmaEs: x0 is empty (d = 0)');
    const bad = Array.from(x0).findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) return invalid(`cmaEs: x0[${bad}] is ${x0[bad]}, expected a finite number`);
    if (!(Number.isFinite(sigma0) && sigma0 > 0)) return invalid(`cmaEs: sigma0 is ${sigma0}, expected > 0`);
    if (!Number.isSafeInteger(options.seed)) return invalid(`cmaEs: seed is ${options.seed}, expected an integer`);
    const lambda = options.populationSize;
    if (lambda !== undefined && !(Number.isSafeInteger(lambda) && lambda >= 2))
      return invalid(`cmaEs: populationSize is ${lambda}, expected an integer >= 2`);
    return ok(new CmaEs(Float64Array.from(x0), sigma0, options));
  }

  get generation(): number {
    return this.g;
  }
  /** A copy of the distribution's state (C row-major), for tests and diagnostics. */
  snapshot(): { mean: Float64Array; sigma: number; C: Float64Array; pSigma: Float64Array; pc: Float64Array } {
    const { mean, sigma, C, pSigma, pc } = this;
    return { mean: mean.slice(), sigma, C: C.slice(), pSigma: pSigma.slice(), pc: pc.slice() };
  }

  /** One candidate x = m + sigma B D z, z ~ N(0, I). */
  ask(): Float64Array {
    const d = this.params.d;
    const dz = Float64Array.from(this.D, (di) => di * this.rng.normal());
    const x = Float64Array.from(this.mean);
    for (let i = 0; i < d; i++) {
      let y = 0;
      for (let j = 0; j < d; j++) y += (this.B[i * d + j] as number) * (dz[j] as number);
      x[i] = (x[i] as number) + this.sigma * y;
    }
    return x;
  }

  /** Updates the distribution from exactly lambda evaluated candidates (any order). */
  tell(solutions: readonly Evaluated[]): void {
    const { d, lambda, mu, weights, muEff, cSigma, dSigma, cc, c1, cMu, chiN } = this.params;
    if (solutions.length !== lambda || solutions.some((s) => s.x.length !== d))
      throw new CmaEsError('CMA_ES_INPUT_INVALID', `cmaEs.tell: expected ${lambda} candidates of length ${d}`);
    // Stable sort, best first; two infinite values tie (Infinity - Infinity is NaN).
    const sorted = [...solutions].sort((a, b) => rankValue(a.value) - rankValue(b.value) || 0);
    const ys = sorted.map((s) => Float64Array.from(s.x, (xi, i) => (xi - (this.mean[i] as number)) / this.sigma));
    const yw = new Float64Array(d);
    for (let k = 0; k < mu; k++)
      for (let i = 0; i < d; i++) yw[i] = (yw[i] as number) + (weights[k] as number) * (ys[k]?.[i] as number);
    for (let i = 0; i < d; i++) this.mean[i] = (this.mean[i] as number) + this.sigma * (yw[i] as number);
    // C^(-1/2) y = B D^-1 B^T y
    const invSqrtC = (y: Float64Array) => {
      const t = Float64Array.from({ length: d }, (_, j) => {
        let s = 0;
        for (let i = 0; i < d; i++) s += (this.B[i * d + j] as number) * (y[i] as number);
        return s / (this.D[j] as number);
      });
      return Float64Array.from({ length: d }, (_, i) => {
        let s = 0;
        for (let j = 0; j < d; j++) s += (this.B[i * d + j] as number) * (t[j] as number);
        return s;
      });
    };
    const zw = invSqrtC(yw);
    const csn = Math.sqrt(cSigma * (2 - cSigma) * muEff);
    for (let i = 0; i < d; i++) this.pSigma[i] = (1 - cSigma) * (this.pSigma[i] as number) + csn * (zw[i] as number);
    const normPs = Math.hypot(...this.pSigma);
    this.sigma = Math.min(this.sigma * Math.exp((cSigma / dSigma) * (normPs / chiN - 1)), 1e32);
    // Stall the rank-one path while ||p_sigma|| is large (tutorial p. 28; g counts from 0 here, cmaes from 1).
    const hSigma = normPs / Math.sqrt(1 - (1 - cSigma) ** (2 * (this.g + 1))) < (1.4 + 2 / (d + 1)) * chiN ? 1 : 0;
    const ccn = hSigma * Math.sqrt(cc * (2 - cc) * muEff);
    for (let i = 0; i < d; i++) this.pc[i] = (1 - cc) * (this.pc[i] as number) + ccn * (yw[i] as number);
    // Negative weights act on y rescaled to length sqrt(d) in the C^(-1/2) metric (tutorial eq. 46).
    const wo = ys.map((y, k) => {
      const w = weights[k] as number;
      return w >= 0 ? w : (w * d) / (Math.hypot(...invSqrtC(y)) ** 2 + 1e-8);
    });
    const deltaH = (1 - hSigma) * cc * (2 - cc);
    const decay = 1 + c1 * deltaH - c1 - cMu * weights.reduce((s, w) => s + w, 0);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let rankMu = 0;
        for (let k = 0; k < lambda; k++) rankMu += (wo[k] as number) * (ys[k]?.[i] as number) * (ys[k]?.[j] as number);
        const ij = i * d + j;
        this.C[ij] =
          decay * (this.C[ij] as number) + c1 * (this.pc[i] as number) * (this.pc[j] as number) + cMu * rankMu;
      }
    }
    this.g += 1;
    this.decompose();
  }

  /** B, D from the symmetrised C; tiny negative eigenvalues (round-off) are clamped as in cmaes. */
  private decompose(): void {
    const d = this.params.d;
    for (let i = 0; i < d; i++)
      for (let j = 0; j < i; j++) {
        const s = ((this.C[i * d + j] as number) + (this.C[j * d + i] as number)) / 2;
        this.C[i * d + j] = s;
        this.C[j * d + i] = s;
      }
    const { values, vectors } = symmetricEigen(this.C, d);
    this.B = vectors;
    this.D = Float64Array.from(values, (v) => Math.sqrt(v < 0 ? 1e-8 : v));
  }
}

export interface CmaEsMinimum {
  /** The best point evaluated (not the final mean, which was never evaluated). */
  x: Float64Array;
  value: number;
  /** Evaluations spent, <= budget. */
  evaluations: number;
  /** Completed generations (a last, partial generation is evaluated but not told). */
  generations: number;
  /** Every objective value, in evaluation order (for best-so-far curves). */
  values: Float64Array;
}

/**
 * Minimises f with at most `budget` evaluations, one at a time in a fixed order (f may be
 * async, e.g. a real metric query). A rejection of f ends the run and is passed on.
 */
export async function minimize(
  f: (x: Float64Array) => number | Promise<number>,
  x0: ArrayLike<number>,
  sigma0: number,
  options: CmaEsOptions & { budget: number },
): Promise<Result<CmaEsMinimum, CmaEsError>> {
  const { budget } = options;
  if (!(Number.isSafeInteger(budget) && budget >= 1))
    return invalid(`minimize: budget is ${budget}, expected an integer >= 1`);
  const created = CmaEs.create(x0, sigma0, options);
  if (!created.ok) return created;
  const es = created.value;
  const values: number[] = [];
  let best: Evaluated | undefined;
  while (values.length < budget) {
    const generation: Evaluated[] = [];
    const n = Math.min(es.params.lambda, budget - values.length);
    for (let k = 0; k < n; k++) {
      const x = es.ask();
      const value = await f(Float64Array.from(x));
      values.push(value);
      generation.push({ x, value });
      if (best === undefined || rankValue(value) < rankValue(best.value)) best = { x, value };
    }
    if (generation.length === es.params.lambda) es.tell(generation);
  }
  const found = best as Evaluated;
  return ok({
    x: Float64Array.from(found.x),
    value: found.value,
    evaluations: values.length,
    generations: es.generation,
    values: Float64Array.from(values),
  });
}
