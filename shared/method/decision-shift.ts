/**
 * The simple baselines a reviewer tries first: move the pre-trained model's decision, not its
 * weights. Both act on scores only, so any black-box metric can judge them.
 * - thresholdScores: binary scores re-expressed so that the decision at 0.5 becomes the
 *   decision at threshold t (a monotone map: ranking metrics such as AP are unchanged);
 * - priorCorrectScores: Bayes' rule from the class-balanced training prior (uniform) to the
 *   natural one, p'_c ∝ p_c · prior_c.
 */

/** p' = sigmoid(logit(p) - logit(t)): p' >= 0.5 exactly when p >= t. */
export function thresholdScores(scores: Float32Array, t: number): Float32Array {
  if (!(t > 0 && t < 1)) throw new RangeError(`thresholdScores: t must lie in (0, 1), got ${t}`);
  const shift = Math.log(t / (1 - t));
  const out = new Float32Array(scores.length);
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i] as number;
    const z = Math.log(p / (1 - p)) - shift;
    // Float32 rounding must not move a value across 0.5 (p >= t decides).
    const v = Math.fround(1 / (1 + Math.exp(-z)));
    out[i] = p >= t ? Math.max(v, 0.5) : v >= 0.5 ? 0.49999997 : v;
  }
  return out;
}

/** Scores re-weighted from a uniform class prior to `prior` (binary: positive-class probabilities). */
export function priorCorrectScores(scores: Float32Array, classes: number, prior: ArrayLike<number>): Float32Array {
  const out = new Float32Array(scores.length);
  if (classes === 2) {
    const pi = prior[1] as number;
    for (let i = 0; i < scores.length; i++) {
      const p = scores[i] as number;
      const num = p * pi;
      const den = num + (1 - p) * (1 - pi);
      out[i] = den > 0 ? num / den : p;
    }
    return out;
  }
  for (let r = 0; r < scores.length; r += classes) {
    let s = 0;
    for (let c = 0; c < classes; c++) s += (scores[r + c] as number) * (prior[c] as number);
    for (let c = 0; c < classes; c++) out[r + c] = s > 0 ? ((scores[r + c] as number) * (prior[c] as number)) / s : 0;
  }
  return out;
}

/**
 * The threshold at which a share `rate` of the scores is called positive (scores >= t), kept
 * strictly inside (0, 1).
 */
export function thresholdForRate(sortedDesc: Float32Array, rate: number): number {
  const n = sortedDesc.length;
  const k = Math.min(n, Math.max(0, Math.round(rate * n)));
  const t = k === 0 ? (sortedDesc[0] as number) + 1e-6 : (sortedDesc[k - 1] as number);
  return Math.min(1 - 1e-7, Math.max(1e-7, t));
}

/**
 * Golden-section search of the predicted-positive rate in [0, 1] with exactly `queries`
 * evaluations (at least 1), each a threshold on the validation scores; the best threshold seen
 * wins (a threshold met twice is asked once). `evaluate` returns the normalised metric (lower is better) or null for a failed query.
 */
export async function searchThreshold(
  valScores: Float32Array,
  queries: number,
  evaluate: (t: number) => Promise<number | null>,
): Promise<{ best: { threshold: number; value: number } | null; queries: number }> {
  const sorted = Float32Array.from(valScores).sort().reverse();
  const phi = (Math.sqrt(5) - 1) / 2;
  let best: { threshold: number; value: number } | null = null;
  const seen = new Map<number, number>();
  const at = async (rate: number): Promise<number> => {
    const t = thresholdForRate(sorted, rate);
    let v = seen.get(t);
    if (v === undefined) {
      v = (await evaluate(t)) ?? Number.POSITIVE_INFINITY;
      seen.set(t, v);
      if (Number.isFinite(v) && (best === null || v < best.value)) best = { threshold: t, value: v };
    }
    return v;
  };
  if (queries <= 1) {
    await at(0.5);
    return { best, queries: seen.size };
  }
  let lo = 0;
  let hi = 1;
  let x1 = hi - phi * (hi - lo);
  let x2 = lo + phi * (hi - lo);
  let f1 = await at(x1);
  let f2 = await at(x2);
  for (let q = 2; q < queries; q++) {
    if (f1 <= f2) {
      hi = x2;
      x2 = x1;
      f2 = f1;
      x1 = hi - phi * (hi - lo);
      f1 = await at(x1);
    } else {
      lo = x1;
      x1 = x2;
      f1 = f2;
      x2 = lo + phi * (hi - lo);
      f2 = await at(x2);
    }
  }
  return { best, queries: seen.size };
}
