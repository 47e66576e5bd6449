import { describe, expect, it } from 'vitest';
import type { AdaptedModel } from '../../shared/models/adapted-model.js';
import type { Evaluator } from '../../shared/ports/evaluator.port.js';
import { metricLearningRuns } from '../../shared/use-cases/training/metric-learning-baseline.js';
import type { SeedQueries } from '../../shared/use-cases/training/meta-test-queries.js';
import { ok } from '../../shared/util/result.js';

/**
 * metricLearningRuns with a model whose embedding loss has gradient 1 in every entry (so plain
 * SGD moves phi by -lr per step, and phi's first entry says which step it is) and queries that
 * record what they are asked: the batches replayed in order, the step size used, the path
 * queried for dense-eval and the best step kept.
 */
const d = 2;
function model(withLoss: boolean, seen: { rows: number[][] }): AdaptedModel {
  const base: AdaptedModel = {
    d,
    classes: 3,
    adapterKind: 'film',
    lossAndGrad: () => {
      throw new Error('cross-entropy must not be used');
    },
    loss: (_p, n) => new Float32Array(n),
    predict: (_p, n, rows) => new Float32Array(n * rows.length * 3),
    embedDim: 2,
    embed: (_p, n, rows) => new Float32Array(n * rows.length * 2),
    dispose() {},
  };
  if (!withLoss) return base;
  return {
    ...base,
    embeddingLossAndGrad(_phis, n, rows, batch) {
      seen.rows.push(Array.from(rows));
      expect([n, batch]).toEqual([1, rows.length]);
      return { loss: new Float32Array(1), grad: new Float32Array(d).fill(1) };
    },
  };
}
const metric = (outputs?: Evaluator['outputs']): Evaluator => ({
  name: 'm',
  direction: 'maximize',
  ...(outputs ? { outputs } : {}),
  evaluate: () => 0.5,
});
/** Test score: phi's first entry; validation (normalised, lower is better): distance of phi_0 to -0.2. */
function queries(log: { val: number[][]; tags: number[] }): Pick<SeedQueries, 'score' | 'queryVal' | 'best'> {
  return {
    score: async (phi) => phi[0] as number,
    queryVal: async (phis, tag) => {
      log.val.push(phis.map((p) => p[0] as number));
      log.tags.push(tag);
      return phis.map((p) => Math.abs((p[0] as number) + 0.2));
    },
    best: (vals) => ok(vals.reduce<number>((b, v, i) => ((v as number) < (vals[b] as number) ? i : b), 0)),
  };
}
const batches = [Int32Array.of(1, 2), Int32Array.of(3, 4), Int32Array.of(5, 6), Int32Array.of(7, 8)];
const cfg = { lossOptimizer: 'sgd' as const, metricLoss: { learningRate: 0.1, temperature: 0.3 } };

describe('metricLearningRuns', () => {
  it("replays ce_finetune's batches with the metric loss: the last step, and dense-eval's best of T + 1 queries", async () => {
    const seen = { rows: [] as number[][] };
    const log = { val: [] as number[][], tags: [] as number[] };
    const r = await metricLearningRuns(
      cfg,
      { model: model(true, seen), evaluator: metric(['embedding']) },
      queries(log),
      new Float32Array(d),
      batches,
      7,
    );
    expect(seen.rows).toEqual(batches.map((b) => Array.from(b)));
    expect(r.ok && r.value.skipped).toEqual({});
    const runs = r.ok ? r.value.runs : {};
    // 4 SGD steps of -0.1 from 0: the last step is at -0.4; dense-eval keeps -0.2 (step 2).
    expect(runs.metric_learning_finetune?.test).toBeCloseTo(-0.4, 6);
    expect(runs.metric_learning_finetune?.queries).toBe(0);
    expect(log.val).toHaveLength(1);
    expect(log.val[0]?.map((v) => Number(v.toFixed(6)))).toEqual([0, -0.1, -0.2, -0.3, -0.4]);
    expect(log.tags).toEqual([1_500_007]);
    expect(runs.metric_learning_finetune_dense_eval?.test).toBeCloseTo(-0.2, 6);
    expect(runs.metric_learning_finetune_dense_eval?.queries).toBe(5);
    // The validation value is given back in the metric's own direction (maximize: 1 - the normalised one).
    expect(runs.metric_learning_finetune_dense_eval?.val).toBeCloseTo(1, 6);
  });

  it('adds nothing, run or skipped, for a metric of the probabilities', async () => {
    const seen = { rows: [] as number[][] };
    const log = { val: [] as number[][], tags: [] as number[] };
    const r = await metricLearningRuns(
      cfg,
      { model: model(true, seen), evaluator: metric() },
      queries(log),
      new Float32Array(d),
      batches,
      1,
    );
    expect(r).toEqual({ ok: true, value: { runs: {}, skipped: {} } });
    expect([seen.rows, log.val]).toEqual([[], []]);
  });

  it('skips both, saying why, on a model with embeddings but no embedding loss gradient', async () => {
    const seen = { rows: [] as number[][] };
    const log = { val: [] as number[][], tags: [] as number[] };
    const r = await metricLearningRuns(
      cfg,
      { model: model(false, seen), evaluator: metric(['embedding']) },
      queries(log),
      new Float32Array(d),
      batches,
      1,
    );
    expect(r.ok && r.value.runs).toEqual({});
    expect(r.ok && Object.keys(r.value.skipped).sort()).toEqual([
      'metric_learning_finetune',
      'metric_learning_finetune_dense_eval',
    ]);
    expect(r.ok && r.value.skipped.metric_learning_finetune).toContain('no differentiable embedding head');
    expect(log.val).toEqual([]);
  });
});
