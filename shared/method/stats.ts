/** Small statistics helpers shared by health checks and reports. */
export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i] as number;
  return xs.length === 0 ? Number.NaN : s / xs.length;
}

/** Sample standard deviation (n - 1); 0 for a single value. */
export function std(xs: ArrayLike<number>): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += ((xs[i] as number) - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** Ranks with ties averaged (1-based). */
export function ranks(xs: ArrayLike<number>): Float64Array {
  const idx = Array.from({ length: xs.length }, (_, i) => i).sort((a, b) => (xs[a] as number) - (xs[b] as number));
  const r = new Float64Array(xs.length);
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && xs[idx[j + 1] as number] === xs[idx[i] as number]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[idx[k] as number] = avg;
    i = j + 1;
  }
  return r;
}

export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const ma = mean(a);
  const mb = mean(b);
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    const da = (a[i] as number) - ma;
    const db = (b[i] as number) - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa === 0 || sbb === 0 ? 0 : sab / Math.sqrt(saa * sbb);
}

export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return pearson(ranks(a), ranks(b));
}

/** Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom (table to 30, Cornish-Fisher beyond). */
export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`tQuantile975: df must be an integer >= 1, got ${df}`);
  if (df <= T975.length) return T975[df - 1] as number;
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df);
}

/** Mean and two-sided 95% Student-t interval of the mean; `null` interval for fewer than two values. */
export function meanCi95(xs: ArrayLike<number>): { mean: number; ci95: [number, number] | null } {
  const m = mean(xs);
  if (xs.length < 2) return { mean: m, ci95: null };
  const half = (tQuantile975(xs.length - 1) * std(xs)) / Math.sqrt(xs.length);
  return { mean: m, ci95: [m - half, m + half] };
}

export type Verdict = 'better' | 'tie' | 'worse' | 'no-interval';

/**
 * Paired comparison of method a against baseline b over replicates (same index = same
 * replicate): diff = mean(a - b) in the metric's natural direction, its 95% interval, and
 * the verdict for a: better or worse when the interval lies wholly on one side of 0, else a
 * tie; 'no-interval' with a single replicate.
 */
export function pairedComparison(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  direction: 'minimize' | 'maximize',
): { diff: number; ci95: [number, number] | null; verdict: Verdict; perReplicate: number[] } {
  if (a.length !== b.length) throw new RangeError(`pairedComparison: ${a.length} values against ${b.length}`);
  const perReplicate = Array.from({ length: a.length }, (_, i) => (a[i] as number) - (b[i] as number));
  const { mean: diff, ci95 } = meanCi95(perReplicate);
  let verdict: Verdict = 'no-interval';
  if (ci95) {
    const sign = direction === 'minimize' ? -1 : 1;
    const [lo, hi] = ci95;
    if (sign * lo > 0 && sign * hi > 0) verdict = 'better';
    else if (sign * lo < 0 && sign * hi < 0) verdict = 'worse';
    else verdict = 'tie';
  }
  return { diff, ci95, verdict, perReplicate };
}
