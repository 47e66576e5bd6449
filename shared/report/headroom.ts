import { type ScoredRows, evaluationInput } from '../metrics/context-columns.js';
import { MetricError } from '../metrics/errors.js';
import type { Evaluator } from '../ports/evaluator.port.js';
import { normalise } from '../metrics/evaluator.js';
import { evaluateWithRetries } from '../metrics/retry-policy.js';

/**
 * Headroom: what simple rules could reach on the reported rows themselves, given the pre-trained
 * scores. Both are OPTIMISTIC ORACLES (chosen on the rows they are scored on), a ceiling to read
 * a method's result against, never a method:
 * - globalThreshold: the best single decision threshold (binary tasks), over the score quantiles;
 *   for a ranking metric (AP, top-5 % value) it is the metric of the scores themselves;
 * - contextRule: the best row- or group-dependent rule the project knows for the metric:
 *   instance-cost: call row i positive when logit(p_i) + log(a_i) + c >= 0 (the Bayes rule
 *     p >= 1/(1+a_i) on calibrated scores; c, a calibration offset, searched);
 *   top5-value: rank by sigmoid(logit(p_i) + c) * v_i (expected captured value; c searched);
 *   any binary metric on data with a `group` column (group-balanced-error, the label-noise
 *     cell's mcr): one threshold per group, by coordinate descent over the groups.
 * Multi-class tasks: globalThreshold is the best per-class offset of the log-probabilities
 * (a prior shift, the multi-class counterpart of a threshold: offsets in -3..3 by 0.25, by
 * coordinate descent, two passes, from zero); contextRule stays null. A metric that reads
 * embeddings has no headroom rule (both null).
 * Values are in the metric's natural direction; null where no rule is known.
 */
export interface Headroom {
  globalThreshold: number | null;
  contextRule: number | null;
  /** Which context rule (null when none applies). */
  rule: 'bayes-instance-cost' | 'expected-value-ranking' | 'group-thresholds' | null;
}

/** Offsets c of the logit and weights w of the row's own term searched by the context rules. */
const OFFSETS = Array.from({ length: 81 }, (_, i) => -4 + i * 0.1);
const WEIGHTS = [0.5, 0.75, 1, 1.5];
/** Candidate thresholds: this many score quantiles (plus 0.5). */
const QUANTILES = 199;

const logit = (p: number): number => {
  const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
  return Math.log(q / (1 - q));
};
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export async function headroom(evaluator: Evaluator, scores: Float32Array, on: ScoredRows): Promise<Headroom> {
  const none: Headroom = { globalThreshold: null, contextRule: null, rule: null };
  // A metric of the embeddings (recall-at-K): shifting the probabilities does not move it, and
  // the project knows no rule over embeddings.
  if (evaluator.outputs?.includes('embedding')) return none;
  try {
    if (on.classes !== 2) return { ...none, globalThreshold: await classOffsets(evaluator, scores, on) };
    return await oracles(evaluator, scores, on);
  } catch (e) {
    // An evaluator that still fails after its retries leaves the headroom unknown, never a crash.
    if (e instanceof MetricError) return none;
    throw e;
  }
}

async function oracles(evaluator: Evaluator, scores: Float32Array, on: ScoredRows): Promise<Headroom> {
  const value = async (s: Float32Array): Promise<number> => {
    const r = await evaluateWithRetries(evaluator, evaluationInput(s, on));
    if (!r.ok) throw r.error;
    return r.value.normalised;
  };
  const back = (v: number | null) => (v === null ? null : normalise(v, evaluator.direction));
  const thresholds = candidateThresholds(scores);
  const global = await bestThreshold(scores, thresholds, value);
  let contextRule: number | null = null;
  let rule: Headroom['rule'] = null;
  const ctx = on.context ?? {};
  if (evaluator.name === 'instance-cost' && ctx.amount) {
    const la = Float64Array.from(ctx.amount, Math.log);
    rule = 'bayes-instance-cost';
    contextRule = await bestOffset(scores, (z, c, w, i) => (z + w * (la[i] as number) + c >= 0 ? 1 : 0), value);
  } else if (evaluator.name === 'top5-value' && ctx.value) {
    const lv = Float64Array.from(ctx.value, Math.log);
    rule = 'expected-value-ranking';
    contextRule = await bestOffset(
      scores,
      (z, c, w, i) => sigmoid(Math.log(sigmoid(z + c)) + w * (lv[i] as number)),
      value,
    );
  } else if (ctx.group) {
    rule = 'group-thresholds';
    contextRule = await groupThresholds(scores, ctx.group, thresholds, value);
  }
  // Each rule family contains the single threshold (weight 0, equal group thresholds).
  if (contextRule !== null && global !== null) contextRule = Math.min(contextRule, global);
  return { globalThreshold: back(global), contextRule: back(contextRule), rule };
}

/** The multi-class oracle: the best per-class offsets of log p (see `headroom`), natural direction. */
async function classOffsets(evaluator: Evaluator, scores: Float32Array, on: ScoredRows): Promise<number> {
  const k = on.classes;
  const n = scores.length / k;
  const logp = Float64Array.from(scores, (p) => Math.log(Math.max(p, 1e-12)));
  const offsets = new Float64Array(k);
  const shifted = (): Float32Array => {
    const out = new Float32Array(scores.length);
    for (let i = 0; i < n; i++) {
      let m = Number.NEGATIVE_INFINITY;
      for (let c = 0; c < k; c++) m = Math.max(m, (logp[i * k + c] as number) + (offsets[c] as number));
      let sum = 0;
      for (let c = 0; c < k; c++) {
        const e = Math.exp((logp[i * k + c] as number) + (offsets[c] as number) - m);
        out[i * k + c] = e;
        sum += e;
      }
      for (let c = 0; c < k; c++) out[i * k + c] = (out[i * k + c] as number) / sum;
    }
    return out;
  };
  const value = async (s: Float32Array): Promise<number> => {
    const r = await evaluateWithRetries(evaluator, evaluationInput(s, on));
    if (!r.ok) throw r.error;
    return r.value.normalised;
  };
  let best = await value(shifted());
  for (let pass = 0; pass < 2; pass++) {
    for (let c = 0; c < k; c++) {
      let bestOffset = offsets[c] as number;
      for (let step = -12; step <= 12; step++) {
        offsets[c] = step * 0.25;
        const v = await value(shifted());
        if (v < best) {
          best = v;
          bestOffset = offsets[c] as number;
        }
      }
      offsets[c] = bestOffset;
    }
  }
  return normalise(best, evaluator.direction);
}

/** 0.5 and the score quantiles, ascending, each strictly inside (0, 1). */
export function candidateThresholds(scores: Float32Array): number[] {
  const sorted = Float32Array.from(scores).sort();
  const set = new Set<number>([0.5]);
  for (let k = 0; k <= QUANTILES; k++) {
    const i = Math.min(sorted.length - 1, Math.round((k / QUANTILES) * (sorted.length - 1)));
    if (sorted.length > 0) set.add(Math.min(1 - 1e-7, Math.max(1e-7, sorted[i] as number)));
  }
  return [...set].sort((a, b) => a - b);
}

/** Scores whose decision at 0.5 is `p >= t` (0/1 decisions: the metric sees the decision only, or a ranking kept within each side). */
function decide(scores: Float32Array, t: number, mask?: (i: number) => boolean, base?: Float32Array): Float32Array {
  const out = base ? Float32Array.from(base) : new Float32Array(scores.length);
  for (let i = 0; i < scores.length; i++) {
    if (mask && !mask(i)) continue;
    const p = scores[i] as number;
    // Keep the ranking within each side of the threshold (ranking metrics see it unchanged).
    out[i] = p >= t ? 0.5 + 0.5 * p : 0.5 * p * 0.999;
  }
  return out;
}

async function bestThreshold(
  scores: Float32Array,
  thresholds: number[],
  value: (s: Float32Array) => Promise<number>,
): Promise<number | null> {
  let best: number | null = null;
  for (const t of thresholds) {
    const v = await value(decide(scores, t));
    if (best === null || v < best) best = v;
  }
  return best;
}

/**
 * The best of a rule family over the offset c and the weight w of the row's own term (w = 1 is
 * the Bayes rule on calibrated scores; the other weights hedge a miscalibrated model). A rule
 * returns a 0/1 decision or a ranking score in (0, 1); the metric sees it as the scores.
 */
async function bestOffset(
  scores: Float32Array,
  score: (z: number, c: number, w: number, i: number) => number,
  value: (s: Float32Array) => Promise<number>,
): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  const z = Float64Array.from(scores, logit);
  for (const w of WEIGHTS) {
    for (const c of OFFSETS) {
      const v = await value(Float32Array.from(z, (zi, i) => score(zi, c, w, i)));
      if (v < best) best = v;
    }
  }
  return best;
}

/** One threshold per group value, by coordinate descent (two passes) from the best global threshold. */
async function groupThresholds(
  scores: Float32Array,
  group: Float64Array,
  thresholds: number[],
  value: (s: Float32Array) => Promise<number>,
): Promise<number> {
  const groups = [...new Set(group)].sort((a, b) => a - b);
  const t = new Map<number, number>(groups.map((g) => [g, 0.5]));
  const build = () => {
    let s: Float32Array = new Float32Array(scores.length);
    for (const g of groups) s = decide(scores, t.get(g) as number, (i) => group[i] === g, s);
    return s;
  };
  let best = await value(build());
  for (let pass = 0; pass < 2; pass++) {
    for (const g of groups) {
      let bestT = t.get(g) as number;
      for (const cand of thresholds) {
        t.set(g, cand);
        const v = await value(build());
        if (v < best) {
          best = v;
          bestT = cand;
        }
      }
      t.set(g, bestT);
    }
  }
  return best;
}

/**
 * The share of the gap between the best baseline and the oracle that metricopt closed, from
 * normalised means (lower is better): 1 = reached the oracle, 0 = no better than the baseline,
 * negative = worse; null when there is no gap to close (less than MIN_GAP, 0.001 normalised).
 */
export function gapClosed(metricopt: number, bestBaseline: number, oracle: number): number | null {
  const gap = bestBaseline - oracle;
  // Below this the ratio is noise over a near-zero gap (a tie at the ceiling): not reported.
  if (!(gap >= MIN_GAP)) return null;
  return (bestBaseline - metricopt) / gap;
}

/** The smallest gap (normalised metric units) whose closed share is reported. */
export const MIN_GAP = 1e-3;
