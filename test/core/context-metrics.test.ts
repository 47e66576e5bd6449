import { describe, expect, it } from 'vitest';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { fromDense } from '../../shared/data/dataset.js';
import {
  deriveColumn,
  groupLabelNoise,
  sliceContext,
  standardisedProjection,
  withDerivedContext,
} from '../../shared/metrics/context-columns.js';
import { groupBalancedError, instanceCost, topValue } from '../../shared/metrics/context-metrics.js';
import type { EvaluationInput, Evaluator } from '../../shared/ports/evaluator.port.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import { evaluateWithRetries } from '../../shared/metrics/retry-policy.js';
import { decisionShiftPhi } from '../../shared/use-cases/training/decision-shift-phi.js';
import { candidateThresholds, gapClosed, headroom } from '../../shared/report/headroom.js';
import { Rng } from '../../shared/util/random.js';

const f32 = (xs: number[]) => Float32Array.from(xs);
const i32 = (xs: number[]) => Int32Array.from(xs);
const f64 = (xs: number[]) => Float64Array.from(xs);

function input(scores: number[], labels: number[], context: Record<string, number[]>): EvaluationInput {
  return {
    scores: f32(scores),
    labels: i32(labels),
    classes: 2,
    rows: Int32Array.from(labels, (_, i) => i),
    context: Object.fromEntries(Object.entries(context).map(([k, v]) => [k, f64(v)])),
  };
}

function tinyDataset(): SparseDataset {
  // 6 rows, 3 features; feature 2 marks group 1 (rows 3..5).
  const x = f32([1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 1]);
  return fromDense('tiny', x, 3, i32([1, 0, 1, 1, 0, 1]), 2);
}

describe('instance-cost', () => {
  it('charges each missed positive its amount and each false alarm 1, over the all-wrong cost', () => {
    // rows: pos a=3 missed, pos a=1 caught, neg false alarm, neg correct.
    const v = instanceCost.evaluate(input([0.2, 0.9, 0.7, 0.1], [1, 1, 0, 0], { amount: [3, 1, 5, 5] }));
    expect(v).toBeCloseTo((3 + 1) / (3 + 1 + 1 + 1), 12);
  });

  it('refuses a missing or mis-sized amount column with METRIC_INPUT_INVALID', () => {
    expect(() => instanceCost.evaluate(input([0.5], [1], {}))).toThrowError(
      expect.objectContaining({
        code: 'METRIC_INPUT_INVALID',
        details: { reason: 'context-missing', column: 'amount' },
      }),
    );
    expect(() => instanceCost.evaluate(input([0.5, 0.2], [1, 0], { amount: [1] }))).toThrowError(
      expect.objectContaining({ code: 'METRIC_INPUT_INVALID', details: { reason: 'length', expected: 2, actual: 1 } }),
    );
  });

  it('is a built-in reachable by name', () => {
    const found = builtinEvaluator('instance-cost');
    expect(found.ok && found.value).toBe(instanceCost);
  });
});

describe('group-balanced-error', () => {
  it('averages the balanced error of each group', () => {
    // group 0: one pos caught, one neg wrong -> (0 + 1) / 2; group 1: pos missed, no neg -> 1.
    const v = groupBalancedError.evaluate(input([0.9, 0.8, 0.1], [1, 0, 1], { group: [0, 0, 1] }));
    expect(v).toBeCloseTo((0.5 + 1) / 2, 12);
  });
});

describe('top5-value', () => {
  it('captures the value of true positives among the top 5 % of scores, over the best possible', () => {
    const n = 40; // top 5 % = 2 rows
    const scores = Array.from({ length: n }, (_, i) => 1 - i / n);
    const labels = Array.from({ length: n }, (_, i) => (i === 0 || i === 5 || i === 6 ? 1 : 0));
    const value = Array.from({ length: n }, (_, i) => (i === 0 ? 1 : i === 5 ? 4 : i === 6 ? 3 : 9));
    // Top two rows: 0 (positive, 1) and 1 (negative); best two positives: 4 + 3.
    expect(topValue.evaluate(input(scores, labels, { value }))).toBeCloseTo(1 / 7, 12);
  });
});

describe('derived context columns', () => {
  it('amount = exp(clip(z, -2, 2)) of a standardised fixed projection, the same every time', () => {
    const ds = tinyDataset();
    const z = standardisedProjection(ds, 19_001);
    const mean = z.reduce((a, b) => a + b, 0) / z.length;
    const sd = Math.sqrt(z.reduce((a, b) => a + (b - mean) ** 2, 0) / z.length);
    expect(mean).toBeCloseTo(0, 10);
    expect(sd).toBeCloseTo(1, 10);
    const a = deriveColumn(ds, 'amount');
    a.forEach((v, i) => expect(v).toBeCloseTo(Math.exp(Math.min(2, Math.max(-2, z[i] as number))), 12));
    expect(Array.from(deriveColumn(ds, 'amount'))).toEqual(Array.from(a));
    expect(Array.from(deriveColumn(ds, 'value'))).not.toEqual(Array.from(a));
  });

  it('group marks the rows where the chosen feature is non-zero, and needs that feature', () => {
    const ds = tinyDataset();
    expect(Array.from(deriveColumn(ds, 'group', 2))).toEqual([0, 0, 0, 1, 1, 1]);
    expect(() => deriveColumn(ds, 'group')).toThrowError(expect.objectContaining({ code: 'METRIC_INPUT_INVALID' }));
    expect(() => withDerivedContext(ds, ['nope'])).toThrowError(
      expect.objectContaining({ code: 'METRIC_INPUT_INVALID', details: { reason: 'context-missing', column: 'nope' } }),
    );
  });

  it('keeps a column the data set already carries', () => {
    const ds = { ...tinyDataset(), context: { amount: f64([1, 2, 3, 4, 5, 6]) } };
    expect(Array.from(withDerivedContext(ds, ['amount']).context?.amount ?? [])).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('slices context to the given rows, in their order', () => {
    expect(sliceContext({ g: f64([10, 11, 12, 13]) }, i32([3, 0, 2]))).toEqual({ g: f64([13, 10, 12]) });
  });

  it('flips only positive training rows of group 1, at the given rate', () => {
    const n = 4000;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
    const group = Float64Array.from({ length: n }, (_, i) => (i < n / 2 ? 1 : 0));
    const train = Int32Array.from({ length: n * 0.75 }, (_, i) => i);
    const noisy = groupLabelNoise(labels, group, train, 0.5, 3);
    let flipped = 0;
    for (let i = 0; i < n; i++) {
      if (noisy[i] !== labels[i]) {
        expect(labels[i]).toBe(1);
        expect(group[i]).toBe(1);
        expect(i).toBeLessThan(n * 0.75);
        flipped++;
      }
    }
    // 1000 positive training rows of group 1, half flipped: 500 +- 4.5 sd (sd = 15.8).
    expect(Math.abs(flipped - 500)).toBeLessThan(72);
  });
});

describe('InProcessMetricOracle', () => {
  it('hands the registered rows and context to the evaluator, intact and in order', async () => {
    const seen: EvaluationInput[] = [];
    const spy: Evaluator = {
      name: 'spy',
      direction: 'minimize',
      evaluate(x) {
        seen.push(x);
        return 0.5;
      },
    };
    const oracle = new InProcessMetricOracle(spy);
    const rows = i32([7, 3, 11]);
    const context = { amount: f64([1.5, 2.5, 3.5]) };
    await oracle.registerSplit('val', { labels: i32([1, 0, 1]), classes: 2, rows, context });
    const [r] = await oracle.evaluate([{ jobId: 'j', taskId: 0, step: 0, split: 'val', scores: f32([0.1, 0.2, 0.3]) }]);
    expect(r?.ok).toBe(true);
    expect(Array.from(seen[0]?.rows ?? [])).toEqual([7, 3, 11]);
    expect(Array.from(seen[0]?.context?.amount ?? [])).toEqual([1.5, 2.5, 3.5]);
  });

  it('gives the same value as the evaluator called directly with the same rows and context (differential)', async () => {
    const rng = new Rng(4);
    const n = 300;
    const labels = Int32Array.from({ length: n }, () => (rng.next() < 0.3 ? 1 : 0));
    const amount = Float64Array.from({ length: n }, () => Math.exp(rng.normal()));
    const rows = Int32Array.from({ length: n }, (_, i) => 2 * i);
    const oracle = new InProcessMetricOracle(instanceCost);
    await oracle.registerSplit('val', { labels, classes: 2, rows, context: { amount } });
    for (let k = 0; k < 5; k++) {
      const scores = rng.normals(n, 1).map((v) => 1 / (1 + Math.exp(-v)));
      const [viaOracle] = await oracle.evaluate([{ jobId: 'j', taskId: k, step: 0, split: 'val', scores }]);
      const direct = await evaluateWithRetries(instanceCost, { scores, labels, classes: 2, rows, context: { amount } });
      expect(viaOracle?.ok && direct.ok && viaOracle.value.value === direct.value.value).toBe(true);
    }
  });
});

describe('headroom oracles', () => {
  it('finds the best global threshold of a problem whose answer is known', async () => {
    // Positives score 0.3, 0.35; negatives 0.1, 0.2, 0.6: the threshold 0.3 errs on one row (0.6).
    const h = await headroom(
      (builtinEvaluator('mcr') as { ok: true; value: Evaluator }).value,
      f32([0.3, 0.35, 0.1, 0.2, 0.6]),
      { labels: i32([1, 1, 0, 0, 0]), classes: 2 },
    );
    expect(h.globalThreshold).toBeCloseTo(1 / 5, 12);
    expect(h.contextRule).toBeNull();
  });

  it('reaches zero instance cost with the per-row Bayes rule where a single threshold cannot', async () => {
    // Every row has p = 0.3; positives carry amount 9 (call when 0.3 >= 1/10), negatives 0.5
    // (skip: 0.3 < 1/1.5). One threshold calls all or none.
    const scores = f32([0.3, 0.3, 0.3, 0.3]);
    const on = { labels: i32([1, 1, 0, 0]), classes: 2, context: { amount: f64([9, 9, 0.5, 0.5]) } };
    const h = await headroom(instanceCost, scores, on);
    expect(h.rule).toBe('bayes-instance-cost');
    expect(h.contextRule).toBe(0);
    // All positive: 2 false alarms of cost 1 over 9 + 9 + 1 + 1; all negative: 18 / 20.
    expect(h.globalThreshold).toBeCloseTo(2 / 20, 12);
  });

  it('finds one threshold per group where the groups need different ones', async () => {
    // Group 0 separates at 0.5, group 1 at 0.15 (its scores are shifted down).
    const scores = f32([0.7, 0.8, 0.3, 0.2, 0.2, 0.25, 0.1, 0.05]);
    const labels = i32([1, 1, 0, 0, 1, 1, 0, 0]);
    const group = f64([0, 0, 0, 0, 1, 1, 1, 1]);
    const h = await headroom(groupBalancedError, scores, { labels, classes: 2, context: { group } });
    expect(h.rule).toBe('group-thresholds');
    expect(h.contextRule).toBe(0);
    expect(h.globalThreshold as number).toBeGreaterThan(0);
  });

  it('ranks by expected value for top5-value', async () => {
    // 20 rows, top 5 % = 1 row. Row 0: p 0.9, value 1; row 1: p 0.8, value 10 (both positive).
    const scores = f32([0.9, 0.8, ...Array.from({ length: 18 }, () => 0.1)]);
    const labels = i32([1, 1, ...Array.from({ length: 18 }, () => 0)]);
    const value = f64([1, 10, ...Array.from({ length: 18 }, () => 1)]);
    const h = await headroom(topValue, scores, { labels, classes: 2, context: { value } });
    expect(h.globalThreshold).toBeCloseTo(0.1, 12);
    expect(h.contextRule).toBeCloseTo(1, 12);
  });

  it('offers 0.5 and the score quantiles as thresholds, ascending', () => {
    const t = candidateThresholds(f32([0.9, 0.1, 0.4]));
    expect(t).toEqual([...t].sort((a, b) => a - b));
    expect(t).toContain(0.5);
    expect(t).toContain(Math.fround(0.1));
  });

  it('measures the share of the gap closed', () => {
    expect(gapClosed(0.15, 0.2, 0.1)).toBeCloseTo(0.5, 12);
    expect(gapClosed(0.25, 0.2, 0.1)).toBeCloseTo(-0.5, 12);
    expect(gapClosed(0.1, 0.1, 0.1)).toBeNull();
    // A gap below 0.001 is a tie at the ceiling: its ratio is noise, not reported.
    expect(gapClosed(0.12, 0.1004, 0.1)).toBeNull();
  });
});

describe('decisionShiftPhi', () => {
  it('writes the threshold into the output bias so that phi decides at 0.5 as the model at t', () => {
    const model = { d: 4, classes: 2, logitShift: { index: 3, count: 1, scale: 2 } };
    const phi = decisionShiftPhi(model, 0.25, [0.7, 0.3]);
    expect(Array.from(phi.subarray(0, 3))).toEqual([0, 0, 0]);
    // logit(p) + 2 * phi_3 >= 0  <=>  logit(p) >= logit(0.25).
    expect(2 * (phi[3] as number)).toBeCloseTo(-Math.log(0.25 / 0.75), 6);
    expect(Array.from(decisionShiftPhi({ d: 3, classes: 2 }, 0.25, [0.7, 0.3]))).toEqual([0, 0, 0]);
  });
});
