/**
 * Gaussian-process interpolation of sparse metric observations along one trajectory
 * (Stage 2): RBF kernel over the step index scaled to [0, 1], constant mean (the observations'
 * mean), hyperparameters (length-scale, signal and noise variance) by maximising the log
 * marginal likelihood over a small grid. The posterior mean and standard deviation label every
 * step; the std is floored so no regression weight 1/std is infinite.
 */
export interface GpFit {
  mean: Float64Array;
  std: Float64Array;
  lengthScale: number;
  signalVariance: number;
  noiseVariance: number;
  logMarginalLikelihood: number;
}

export interface GpOptions {
  stdFloor: number;
  lengthScales: number[];
  /** Signal variance candidates, as multiples of the observations' variance. */
  signalScales: number[];
  /** Noise variance candidates, as multiples of the observations' variance (plus an absolute floor). */
  noiseScales: number[];
}

export const defaultGpOptions: GpOptions = {
  stdFloor: 1e-3,
  lengthScales: [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2.5],
  signalScales: [0.25, 0.5, 1, 2, 4],
  noiseScales: [1e-4, 1e-3, 1e-2, 5e-2, 0.2],
};

export function rbf(a: number, b: number, lengthScale: number, signalVariance: number): number {
  const r = (a - b) / lengthScale;
  return signalVariance * Math.exp(-0.5 * r * r);
}

/** Cholesky factor L (row-major, lower) of a symmetric positive-definite n x n matrix, or undefined. */
export function cholesky(a: Float64Array, n: number): Float64Array | undefined {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j] as number;
      for (let k = 0; k < j; k++) s -= (l[i * n + k] as number) * (l[j * n + k] as number);
      if (i === j) {
        if (!(s > 0)) return undefined;
        l[i * n + i] = Math.sqrt(s);
      } else {
        l[i * n + j] = s / (l[j * n + j] as number);
      }
    }
  }
  return l;
}

/** Solves L L^T x = b. */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (l[i * n + k] as number) * (y[k] as number);
    y[i] = s / (l[i * n + i] as number);
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i] as number;
    for (let k = i + 1; k < n; k++) s -= (l[k * n + i] as number) * (x[k] as number);
    x[i] = s / (l[i * n + i] as number);
  }
  return x;
}

interface Hyper {
  lengthScale: number;
  signalVariance: number;
  noiseVariance: number;
}

function logMarginal(
  xs: number[],
  yc: Float64Array,
  h: Hyper,
): { lml: number; l: Float64Array; alpha: Float64Array } | undefined {
  const n = xs.length;
  const k = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) k[i * n + j] = rbf(xs[i] as number, xs[j] as number, h.lengthScale, h.signalVariance);
    k[i * n + i] = (k[i * n + i] as number) + h.noiseVariance;
  }
  const l = cholesky(k, n);
  if (!l) return undefined;
  const alpha = choleskySolve(l, n, yc);
  let fit = 0;
  let logDet = 0;
  for (let i = 0; i < n; i++) {
    fit += (yc[i] as number) * (alpha[i] as number);
    logDet += Math.log(l[i * n + i] as number);
  }
  return { lml: -0.5 * fit - logDet - 0.5 * n * Math.log(2 * Math.PI), l, alpha };
}

/** GP posterior at query points given fixed hyperparameters (exposed for the closed-form test). */
export function gpPosterior(
  xs: number[],
  ys: number[],
  queries: number[],
  h: Hyper,
  meanValue: number,
): { mean: Float64Array; variance: Float64Array } {
  const n = xs.length;
  const yc = Float64Array.from(ys, (y) => y - meanValue);
  const fit = logMarginal(xs, yc, h);
  if (!fit) throw new Error('gpPosterior: kernel matrix is not positive definite');
  const mean = new Float64Array(queries.length);
  const variance = new Float64Array(queries.length);
  const kstar = new Float64Array(n);
  for (let q = 0; q < queries.length; q++) {
    const t = queries[q] as number;
    for (let i = 0; i < n; i++) kstar[i] = rbf(t, xs[i] as number, h.lengthScale, h.signalVariance);
    let m = meanValue;
    for (let i = 0; i < n; i++) m += (kstar[i] as number) * (fit.alpha[i] as number);
    const v = choleskySolve(fit.l, n, kstar);
    let reduce = 0;
    for (let i = 0; i < n; i++) reduce += (kstar[i] as number) * (v[i] as number);
    mean[q] = m;
    variance[q] = Math.max(0, h.signalVariance - reduce);
  }
  return { mean, variance };
}

/**
 * Fits the GP to observations (steps in 0..T, values) and returns mean and std at every step
 * 0..T. With one observation the mean is that constant; the std then is the floor.
 */
export function fitGp(steps: number[], values: number[], T: number, options: GpOptions = defaultGpOptions): GpFit {
  const n = steps.length;
  if (n === 0) throw new Error('fitGp: no observations');
  const xs = steps.map((s) => s / Math.max(1, T));
  const meanValue = values.reduce((s, v) => s + v, 0) / n;
  const yc = Float64Array.from(values, (v) => v - meanValue);
  const varY = Math.max(values.reduce((s, v) => s + (v - meanValue) ** 2, 0) / n, 1e-8);
  const queries = Array.from({ length: T + 1 }, (_, t) => t / Math.max(1, T));
  if (n === 1) {
    return {
      mean: new Float64Array(T + 1).fill(meanValue),
      std: new Float64Array(T + 1).fill(options.stdFloor),
      lengthScale: Number.NaN,
      signalVariance: 0,
      noiseVariance: 0,
      logMarginalLikelihood: 0,
    };
  }
  let best: (Hyper & { lml: number }) | undefined;
  for (const lengthScale of options.lengthScales) {
    for (const s of options.signalScales) {
      for (const e of options.noiseScales) {
        const h = { lengthScale, signalVariance: s * varY, noiseVariance: e * varY + 1e-10 };
        const fit = logMarginal(xs, yc, h);
        if (fit && (!best || fit.lml > best.lml)) best = { ...h, lml: fit.lml };
      }
    }
  }
  if (!best) throw new Error('fitGp: no hyperparameters gave a positive-definite kernel');
  const post = gpPosterior(xs, values, queries, best, meanValue);
  const std = Float64Array.from(post.variance, (v) => Math.max(Math.sqrt(v), options.stdFloor));
  return {
    mean: post.mean,
    std,
    lengthScale: best.lengthScale,
    signalVariance: best.signalVariance,
    noiseVariance: best.noiseVariance,
    logMarginalLikelihood: best.lml,
  };
}

/** Linear interpolation between observations (the paper's ablation); std is the floor. */
export function linearInterpolation(steps: number[], values: number[], T: number, stdFloor = 1e-3): GpFit {
  const order = steps.map((s, i) => [s, values[i] as number] as const).sort((a, b) => a[0] - b[0]);
  const mean = new Float64Array(T + 1);
  for (let t = 0; t <= T; t++) {
    let j = 0;
    while (j < order.length - 1 && (order[j + 1]?.[0] as number) < t) j++;
    const [s0, v0] = order[j] as readonly [number, number];
    const next = order[j + 1];
    if (!next || t <= s0) mean[t] = v0;
    else {
      const [s1, v1] = next;
      mean[t] = t >= s1 ? v1 : v0 + ((v1 - v0) * (t - s0)) / (s1 - s0);
    }
  }
  return {
    mean,
    std: new Float64Array(T + 1).fill(stdFloor),
    lengthScale: Number.NaN,
    signalVariance: 0,
    noiseVariance: 0,
    logMarginalLikelihood: Number.NaN,
  };
}
