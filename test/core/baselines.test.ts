import { describe, expect, it } from 'vitest';
import { classPrior, NaturalSampler } from '../../shared/data/sampler.js';
import {
  priorCorrectScores,
  searchThreshold,
  thresholdForRate,
  thresholdScores,
} from '../../shared/method/decision-shift.js';
import { mcr } from '../../shared/metrics/builtins.js';
import { bestObservation, replicateRows } from '../../shared/use-cases/training/run-demo.js';
import { Rng } from '../../shared/util/random.js';

describe('thresholdScores', () => {
  it('calls a score positive at 0.5 exactly when it reaches the threshold', () => {
    const rng = new Rng(3);
    const scores = Float32Array.from({ length: 2000 }, () => rng.next());
    for (const t of [0.05, 0.3, Math.fround(0.7), 0.95, scores[17] as number]) {
      const out = thresholdScores(scores, t);
      scores.forEach((p, i) => expect((out[i] as number) >= 0.5).toBe(p >= t));
    }
  });
  it('keeps the ranking, so threshold-free metrics do not move', () => {
    const out = thresholdScores(Float32Array.from([0.1, 0.4, 0.2, 0.9]), 0.3);
    expect(Array.from(out.keys()).sort((i, j) => (out[i] as number) - (out[j] as number))).toEqual([0, 2, 1, 3]);
  });
});

describe('searchThreshold', () => {
  // Labels positive exactly when the score >= 0.8: the best MCR threshold is at a 20% positive rate.
  const rng = new Rng(5);
  const scores = Float32Array.from({ length: 1000 }, () => rng.next());
  const labels = Int32Array.from(scores, (s) => (s >= 0.8 ? 1 : 0));
  const query = async (t: number) => mcr.evaluate({ scores: thresholdScores(scores, t), labels, classes: 2 }) as number;

  it('finds the known best threshold with enough queries', async () => {
    const { best, queries } = await searchThreshold(scores, 20, query);
    expect(queries).toBeLessThanOrEqual(20);
    expect(best?.threshold).toBeGreaterThan(0.78);
    expect(best?.threshold).toBeLessThan(0.82);
    expect(best?.value).toBeLessThan(0.02);
  });
  it('spends no more queries than it is given and improves on the default threshold', async () => {
    let asked = 0;
    const { best, queries } = await searchThreshold(scores, 5, async (t) => {
      asked++;
      return query(t);
    });
    expect(asked).toBe(queries);
    expect(queries).toBeLessThanOrEqual(5);
    expect(best?.value).toBeLessThan((await query(0.5)) - 0.1);
  });
  it('never picks a failed query', async () => {
    const { best } = await searchThreshold(scores, 6, async (t) => (t > 0.5 ? null : query(t)));
    expect(best?.threshold).toBeLessThanOrEqual(0.5);
  });
  it('maps a positive rate to a threshold that calls that share positive', () => {
    const sorted = Float32Array.from(scores).sort().reverse();
    const t = thresholdForRate(sorted, 0.25);
    expect(scores.filter((s) => s >= t).length).toBe(250);
  });
});

describe('priorCorrectScores', () => {
  it('moves binary scores from a balanced to the natural prior', () => {
    const out = priorCorrectScores(Float32Array.from([0.5, 0.75]), 2, [0.75, 0.25]);
    expect(out[0]).toBeCloseTo(0.25, 6);
    // 0.75 * 0.25 / (0.75 * 0.25 + 0.25 * 0.75) = 0.5
    expect(out[1]).toBeCloseTo(0.5, 6);
  });
  it('re-weights multi-class rows and renormalises them', () => {
    const out = priorCorrectScores(Float32Array.from([1 / 3, 1 / 3, 1 / 3, 0.2, 0.2, 0.6]), 3, [0.5, 0.3, 0.2]);
    expect(Array.from(out.slice(0, 3)).map((v) => Number(v.toFixed(5)))).toEqual([0.5, 0.3, 0.2]);
    const s = 0.2 * 0.5 + 0.2 * 0.3 + 0.6 * 0.2;
    expect(out[5]).toBeCloseTo((0.6 * 0.2) / s, 6);
  });
});

describe('NaturalSampler and classPrior', () => {
  it('draws rows uniformly, so classes come at their natural share', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => (i < 100 ? 1 : 0));
    const rows = Int32Array.from({ length: 1000 }, (_, i) => i);
    expect(classPrior(rows, labels, 2)[1]).toBeCloseTo(0.1, 10);
    const out = new Int32Array(20_000);
    new NaturalSampler(rows).sampleInto(new Rng(1), out);
    const share = out.reduce((s, r) => s + (labels[r] as number), 0) / out.length;
    // Binomial std of the share: sqrt(0.1 * 0.9 / 20000) = 0.0021; 4 std bound.
    expect(Math.abs(share - 0.1)).toBeLessThan(0.0085);
  });
});

describe('bestObservation', () => {
  it('returns the phi of the lowest observed value', () => {
    const d = 2;
    const T = 2;
    // two tasks x 3 steps x d
    const phis = Float32Array.from({ length: 2 * 3 * d }, (_, i) => i);
    const best = bestObservation({
      trajectories: { n: 2, T, d, phis, losses: new Float32Array(4), querySteps: [] },
      observations: [
        [
          { step: 0, value: 0.3 },
          { step: 2, value: 0.2 },
        ],
        [{ step: 1, value: 0.1 }],
      ],
    });
    expect(best?.value).toBe(0.1);
    expect(Array.from(best?.phi ?? [])).toEqual([8, 9]);
    expect(
      bestObservation({ trajectories: { n: 0, T, d, phis, losses: phis, querySteps: [] }, observations: [] }),
    ).toBeNull();
  });
});

describe('replicateRows', () => {
  const split = {
    train: Int32Array.from({ length: 70 }, (_, i) => i),
    val: Int32Array.from({ length: 10 }, (_, i) => 70 + i),
    test: Int32Array.from({ length: 20 }, (_, i) => 80 + i),
  };
  it('halves validation between observation and selection, disjoint and complete', () => {
    const r = replicateRows(split, { selectionSplit: 'separate', reportSplit: 'test' });
    expect(r.observe.length + r.select.length).toBe(10);
    expect([...r.observe, ...r.select].sort((a, b) => a - b)).toEqual(Array.from(split.val));
    expect(r.observe.some((x) => r.select.includes(x))).toBe(false);
    expect(r.report).toBe(split.test);
    expect(r.train).toBe(split.train);
  });
  it('reports on rows held out of training, never on the test split, when choosing defaults', () => {
    const r = replicateRows(split, { selectionSplit: 'shared', reportSplit: 'train-holdout' });
    expect(r.report).toHaveLength(10);
    expect(r.train).toHaveLength(60);
    expect([...r.train].some((x) => r.report.includes(x))).toBe(false);
    expect([...r.report].some((x) => x >= 80)).toBe(false);
    expect(r.observe).toBe(split.val);
    expect(r.select).toBe(split.val);
  });
});
