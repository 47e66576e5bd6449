import { describe, expect, it } from 'vitest';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { recallAtK } from '../../shared/metrics/retrieval.js';
import type { AdaptedModel } from '../../shared/models/adapted-model.js';
import type { EvaluationInput, Evaluator } from '../../shared/ports/evaluator.port.js';
import type { MetaTestDeps } from '../../shared/use-cases/training/meta-test-config.js';
import { seedQueries } from '../../shared/use-cases/training/meta-test-queries.js';
import { MetricObserver } from '../../shared/use-cases/training/observe-metric.js';
import { probeEvaluator } from '../../shared/use-cases/training/run-rows.js';

/**
 * Issue 24: demo and train hand a metric that reads embeddings the model's own, for the phi
 * that was scored, on every query of meta-training and meta-test. A small deterministic model
 * (embedding of row r under phi: the unit vector of (phi_0 + r, phi_1 - r, 1)) and an evaluator
 * that records what it is given make that checkable value by value.
 */
const CLASSES = 3;
const DIM = 3;

function fakeModel(withHead = true): AdaptedModel {
  const base: AdaptedModel = {
    d: 2,
    classes: CLASSES,
    adapterKind: 'film',
    lossAndGrad: (_p, n) => ({ loss: new Float32Array(n), grad: new Float32Array(n * 2) }),
    loss: (_p, n) => new Float32Array(n),
    predict(phis, n, rows) {
      const out = new Float32Array(n * rows.length * CLASSES);
      for (let i = 0; i < n; i++) {
        rows.forEach((r, j) => {
          const at = (i * rows.length + j) * CLASSES;
          const w = [1 + Math.abs(phis[i * 2] as number), 1 + (r % 3), 1 + Math.abs(phis[i * 2 + 1] as number)];
          const sum = w[0]! + w[1]! + w[2]!;
          for (let c = 0; c < CLASSES; c++) out[at + c] = (w[c] as number) / sum;
        });
      }
      return out;
    },
    dispose() {},
  };
  if (!withHead) return base;
  return {
    ...base,
    embedDim: DIM,
    embed(phis, n, rows) {
      const out = new Float32Array(n * rows.length * DIM);
      for (let i = 0; i < n; i++) {
        rows.forEach((r, j) => {
          const v = [(phis[i * 2] as number) + r, (phis[i * 2 + 1] as number) - r, 1];
          const norm = Math.hypot(...v);
          for (let t = 0; t < DIM; t++) out[(i * rows.length + j) * DIM + t] = (v[t] as number) / norm;
        });
      }
      return out;
    },
  };
}

/** Records each input it is given; `outputs` as asked. */
function recorder(outputs?: Evaluator['outputs']): Evaluator & { seen: EvaluationInput[] } {
  const seen: EvaluationInput[] = [];
  return {
    name: 'recorder',
    direction: 'maximize',
    ...(outputs ? { outputs } : {}),
    seen,
    evaluate(input) {
      seen.push(input);
      return 0.5;
    },
  };
}

const rowsA = Int32Array.of(7, 2, 11, 4);
const rowsB = Int32Array.of(3, 9, 5);
const labelsOf = (rows: Int32Array) => Int32Array.from(rows, (r) => r % CLASSES);
const phis = [Float32Array.of(0.5, -1), Float32Array.of(2, 0.25), Float32Array.of(-3, 1.5)];
const model = fakeModel();
const expectedEmbedding = (phi: Float32Array, rows: Int32Array) => Array.from(model.embed?.(phi, 1, rows) ?? []);

describe('embeddings in meta-training queries', () => {
  it('attach the model’s embeddings of each queried phi when the metric reads them', async () => {
    const evaluator = recorder(['embedding']);
    const oracle = new InProcessMetricOracle(evaluator);
    await oracle.registerSplit('val', { labels: labelsOf(rowsA), classes: CLASSES, rows: rowsA });
    const requests = phis.map((phi, i) => ({ taskId: i, step: 0, phi }));
    const observer = new MetricObserver(model, oracle, requests, rowsA, {
      jobId: 'j',
      split: 'val',
      tasks: 3,
      batch: 2,
    });
    while (!observer.finished) await observer.nextBatch();

    expect(observer.failures).toEqual([]);
    expect(evaluator.seen.map((s) => s.embeddings?.dim)).toEqual([DIM, DIM, DIM]);
    expect(evaluator.seen.map((s) => Array.from(s.embeddings?.values ?? []))).toEqual(
      phis.map((phi) => expectedEmbedding(phi, rowsA)),
    );
    expect(evaluator.seen.map((s) => Array.from(s.rows ?? []))).toEqual(phis.map(() => Array.from(rowsA)));
  });

  it('attach none when the metric reads probabilities only', async () => {
    const evaluator = recorder();
    const oracle = new InProcessMetricOracle(evaluator);
    await oracle.registerSplit('val', { labels: labelsOf(rowsA), classes: CLASSES, rows: rowsA });
    const requests = phis.map((phi, i) => ({ taskId: i, step: 0, phi }));
    const observer = new MetricObserver(model, oracle, requests, rowsA, {
      jobId: 'j',
      split: 'val',
      tasks: 3,
      batch: 8,
    });
    await observer.nextBatch();
    expect(evaluator.seen.map((s) => s.embeddings)).toEqual([undefined, undefined, undefined]);
  });
});

describe('embeddings in meta-test scoring', () => {
  async function bench() {
    const evaluator = recorder(['embedding']);
    const oracleEvaluator = recorder(['embedding']);
    const oracle = new InProcessMetricOracle(oracleEvaluator);
    const deps = {
      model,
      evaluator,
      oracle,
      valRows: rowsA,
      valLabels: labelsOf(rowsA),
      testRows: rowsB,
      testLabels: labelsOf(rowsB),
    } as unknown as MetaTestDeps;
    return { evaluator, oracleEvaluator, queries: await seedQueries({ endpointRule: 'best' }, deps, 'job') };
  }

  it('scores a phi on the test rows with that phi’s embeddings of those rows', async () => {
    const { evaluator, queries } = await bench();
    await queries.score(phis[1] as Float32Array, 'test');
    expect(Array.from(evaluator.seen[0]?.embeddings?.values ?? [])).toEqual(
      expectedEmbedding(phis[1] as Float32Array, rowsB),
    );
    expect(Array.from(evaluator.seen[0]?.rows ?? [])).toEqual(Array.from(rowsB));
  });

  it('sends each validation query through the oracle with its own phi’s embeddings', async () => {
    const { oracleEvaluator, queries } = await bench();
    const values = await queries.queryVal(phis, 0);
    expect(values).toEqual([0.5, 0.5, 0.5]);
    expect(oracleEvaluator.seen.map((s) => Array.from(s.embeddings?.values ?? []))).toEqual(
      phis.map((phi) => expectedEmbedding(phi, rowsA)),
    );
  });

  it('keeps the embeddings of phi when the scores are decision-shifted', async () => {
    const { evaluator, oracleEvaluator, queries } = await bench();
    const at = queries.predict(phis[2] as Float32Array, 'val');
    const shifted = { ...at, scores: at.scores.map((p) => p * 0.5 + 1 / 6) };
    await queries.queryScores([shifted], 9);
    await queries.scoreScores(shifted, 'val');
    for (const seen of [oracleEvaluator.seen[0], evaluator.seen[0]]) {
      expect(Array.from(seen?.scores ?? [])).toEqual(Array.from(shifted.scores));
      expect(Array.from(seen?.embeddings?.values ?? [])).toEqual(expectedEmbedding(phis[2] as Float32Array, rowsA));
    }
  });
});

describe('the evaluator probe', () => {
  it('gives recall-at-1 the pre-trained embeddings, and stops a model without a head with MODEL_HAS_NO_EMBEDDINGS', async () => {
    expect(await probeEvaluator(model, recallAtK(1), rowsA, labelsOf(rowsA))).toEqual({ ok: true, value: undefined });
    expect(await probeEvaluator(fakeModel(false), recallAtK(1), rowsA, labelsOf(rowsA))).toMatchObject({
      ok: false,
      error: { code: 'MODEL_HAS_NO_EMBEDDINGS' },
    });
    // A metric of the probabilities runs on such a model as before.
    expect(await probeEvaluator(fakeModel(false), recorder(), rowsA, labelsOf(rowsA))).toEqual({
      ok: true,
      value: undefined,
    });
  });
});
