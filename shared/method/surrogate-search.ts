import { Rng } from '../util/random.js';
import { cholesky } from './gp.js';

/**
 * Value-function-guided search with real queries (issue 19, ideas c and d): the value function
 * proposes, real queries confirm. A trust region around the best real observation so far; each
 * round scores random candidates inside it with a surrogate whose prior mean is the value
 * function and whose correction is a Gaussian process (RBF kernel over phi) fitted to the real
 * observations' residuals y - f(phi), queries a batch of the most promising ones (lowest
 * mean - kappa * std), and widens the region after successes and narrows it after failures
 * (TuRBO's rule, Eriksson et al. 2019). With no observation the surrogate is the value function
 * itself; as observations near the path accumulate, the GP corrects it where it is wrong.
 */
export interface SurrogateSearchOptions {
  /** Real queries to spend (the initial design's included). */
  budget: number;
  /** Queries per round (default: CMA-ES's population for d, 4 + floor(3 ln d)). */
  batch?: number;
  /** Initial, smallest and largest per-coordinate step of the trust region (phi units). */
  sigma0: number;
  sigmaMin?: number;
  sigmaMax?: number;
  /** Candidates scored by the surrogate per query slot. */
  candidatesPerSlot?: number;
  /** Exploration weight of the lower confidence bound. */
  kappa?: number;
  /** The GP uses the observations nearest the incumbent, at most this many (bounds its cost). */
  maxGpPoints?: number;
  seed: number;
}

export interface SurrogateSearchResult {
  best: Float32Array;
  /** Its observed (normalised, lower is better) value. */
  value: number;
  /** Real queries spent. */
  spent: number;
  /** Index into the initial design when the best is one of its points, else -1. */
  fromInitial: number;
  /** Every successful real observation, in query order (the initial design's first). */
  observed: { x: Float32Array; value: number; fromInitial: number }[];
}

/** Minimise a batched black box, starting with `initial` (queried first), guided by `prior`. */
export async function surrogateSearch(
  f: (xs: Float32Array[]) => Promise<(number | null)[]>,
  prior: (phi: Float32Array) => number,
  initial: Float32Array[],
  opts: SurrogateSearchOptions,
): Promise<SurrogateSearchResult | null> {
  if (initial.length === 0) throw new Error('surrogateSearch: the initial design is empty');
  const d = (initial[0] as Float32Array).length;
  const batch = opts.batch ?? 4 + Math.floor(3 * Math.log(d));
  const sigmaMin = opts.sigmaMin ?? opts.sigma0 / 16;
  const sigmaMax = opts.sigmaMax ?? opts.sigma0 * 4;
  const perSlot = opts.candidatesPerSlot ?? 64;
  const kappa = opts.kappa ?? 1;
  const maxGp = opts.maxGpPoints ?? 256;
  const rng = new Rng(opts.seed);
  const xs: Float32Array[] = [];
  const ys: number[] = [];
  const priors: number[] = [];
  let bestI = -1;
  let spent = 0;
  const observe = async (points: Float32Array[]): Promise<boolean> => {
    const values = await f(points);
    spent += points.length;
    const before = bestI < 0 ? Number.POSITIVE_INFINITY : (ys[bestI] as number);
    points.forEach((p, i) => {
      const v = values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      xs.push(p);
      ys.push(v);
      priors.push(prior(p));
      if (bestI < 0 || v < (ys[bestI] as number)) bestI = ys.length - 1;
    });
    return bestI >= 0 && (ys[bestI] as number) < before;
  };
  await observe(initial.slice(0, opts.budget));
  const nInitial = xs.length;
  const initialIndex = new Map(initial.map((p, i) => [p, i]));

  let sigma = opts.sigma0;
  let successes = 0;
  let failures = 0;
  const failTolerance = Math.max(4, Math.ceil(d / batch));
  while (spent < opts.budget && bestI >= 0) {
    const center = xs[bestI] as Float32Array;
    const gp = fitResidualGp(xs, ys, priors, center, maxGp);
    const n = Math.min(batch, opts.budget - spent);
    const picks: Float32Array[] = [];
    for (let s = 0; s < n; s++) {
      let bestScore = Number.POSITIVE_INFINITY;
      let pick: Float32Array | null = null;
      for (let c = 0; c < perSlot; c++) {
        // Steps of every length up to the region's size: near points refine, far ones explore.
        const scale = sigma * Math.sqrt(rng.next());
        const z = rng.normals(d, scale);
        for (let j = 0; j < d; j++) z[j] = (z[j] as number) + (center[j] as number);
        const { mean, sd } = gp.predict(z);
        const score = prior(z) + mean - kappa * sd;
        if (score < bestScore) {
          bestScore = score;
          pick = z;
        }
      }
      picks.push(pick as Float32Array);
    }
    const improved = await observe(picks);
    if (improved) {
      successes++;
      failures = 0;
    } else {
      failures++;
      successes = 0;
    }
    if (successes >= 3) {
      sigma = Math.min(sigmaMax, sigma * 2);
      successes = 0;
    } else if (failures >= failTolerance) {
      sigma = Math.max(sigmaMin, sigma / 2);
      failures = 0;
    }
  }
  if (bestI < 0) return null;
  const best = xs[bestI] as Float32Array;
  return {
    best,
    value: ys[bestI] as number,
    spent,
    fromInitial: bestI < nInitial ? (initialIndex.get(best) ?? -1) : -1,
    observed: xs.map((x, i) => ({
      x,
      value: ys[i] as number,
      fromInitial: i < nInitial ? (initialIndex.get(x) ?? -1) : -1,
    })),
  };
}

interface ResidualGp {
  /** Posterior mean of the residual (to add to the prior) and its standard deviation. */
  predict(x: Float32Array): { mean: number; sd: number };
}

const sqDist = (a: Float32Array, b: Float32Array): number => {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += ((a[j] as number) - (b[j] as number)) ** 2;
  return s;
};

/**
 * A GP on the residuals y - prior(x) of the observations nearest `center`: constant mean,
 * RBF kernel s2 exp(-|x - x'|^2 / (2 l^2)) plus noise g s2 on the diagonal; l and g chosen on a
 * small grid by the marginal likelihood with s2 profiled out (its maximiser has a closed form).
 */
export function fitResidualGp(
  xs: Float32Array[],
  ys: number[],
  priors: number[],
  center: Float32Array,
  maxPoints: number,
): ResidualGp {
  const order = xs.map((_, i) => i);
  if (order.length > maxPoints) {
    const dist = xs.map((x) => sqDist(x, center));
    order.sort((a, b) => (dist[a] as number) - (dist[b] as number));
    order.length = maxPoints;
  }
  const n = order.length;
  const r = order.map((i) => (ys[i] as number) - (priors[i] as number));
  const mu = n > 0 ? r.reduce((a, b) => a + b, 0) / n : 0;
  if (n < 2) return { predict: () => ({ mean: mu, sd: 0 }) };
  const rc = Float64Array.from(r, (v) => v - mu);
  const pts = order.map((i) => xs[i] as Float32Array);
  const d2 = new Float64Array(n * n);
  let meanD2 = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < i; j++) {
      const v = sqDist(pts[i] as Float32Array, pts[j] as Float32Array);
      d2[i * n + j] = v;
      d2[j * n + i] = v;
      meanD2 += v;
    }
  meanD2 /= (n * (n - 1)) / 2;
  const typical = Math.sqrt(Math.max(meanD2, 1e-12));
  let best: { lml: number; l: number; chol: Float64Array; alpha: Float64Array; s2: number } | null = null;
  for (const lf of [0.125, 0.25, 0.5, 1, 2]) {
    const l = lf * typical;
    for (const g of [0.01, 0.1, 1]) {
      const k = new Float64Array(n * n);
      for (let i = 0; i < n * n; i++) k[i] = Math.exp((-0.5 * (d2[i] as number)) / (l * l));
      for (let i = 0; i < n; i++) k[i * n + i] = 1 + g;
      const chol = cholesky(k, n);
      if (!chol) continue;
      const alpha = solveLower(chol, n, rc);
      let quad = 0;
      for (let i = 0; i < n; i++) quad += (alpha[i] as number) ** 2;
      const s2 = Math.max(quad / n, 1e-12);
      let logDet = 0;
      for (let i = 0; i < n; i++) logDet += Math.log(chol[i * n + i] as number);
      // log p(r | l, g, s2 at its maximiser), up to a constant.
      const lml = -0.5 * n * Math.log(s2) - logDet;
      if (!best || lml > best.lml) best = { lml, l, chol, alpha, s2 };
    }
  }
  if (!best) return { predict: () => ({ mean: mu, sd: 0 }) };
  const { l, chol, s2 } = best;
  // alpha here is L^-1 r; the posterior mean is k*^T (L L^T)^-1 r = (L^-1 k*)^T (L^-1 r).
  const w = best.alpha;
  return {
    predict: (x) => {
      const ks = new Float64Array(n);
      for (let i = 0; i < n; i++) ks[i] = Math.exp((-0.5 * sqDist(x, pts[i] as Float32Array)) / (l * l));
      const v = solveLower(chol, n, ks);
      let m = 0;
      let q = 0;
      for (let i = 0; i < n; i++) {
        m += (v[i] as number) * (w[i] as number);
        q += (v[i] as number) ** 2;
      }
      return { mean: mu + m, sd: Math.sqrt(Math.max(0, s2 * (1 - q))) };
    },
  };
}

/** Solves L y = b (forward substitution). */
function solveLower(l: Float64Array, n: number, b: Float64Array): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (l[i * n + k] as number) * (y[k] as number);
    y[i] = s / (l[i * n + i] as number);
  }
  return y;
}
