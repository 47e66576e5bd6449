import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEvaluatorModule } from '../../shared/adapters/evaluator-module.in-process.js';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { fromDense } from '../../shared/data/dataset.js';
import { evaluateChecked } from '../../shared/metrics/checked-evaluator.js';
import { checkEvaluationInput } from '../../shared/metrics/evaluator.js';
import type { EvaluationInput } from '../../shared/ports/evaluator.port.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import { recallAtK } from '../../shared/metrics/retrieval.js';
import { type FrozenConvNet, filmSide, pooledConvNetConfig } from '../../shared/models/convnet.js';
import { FrozenConvNetModel } from '../../shared/models/convnet-model.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';
import { unitRows } from './fixtures.js';

/** Brute force: every other row sorted by cosine (float64), ties by index; a hit when one of the first k shares the label. */
function bruteRecall(values: Float32Array, dim: number, labels: Int32Array, k: number): number {
  const n = labels.length;
  let hits = 0;
  for (let q = 0; q < n; q++) {
    const others = Array.from({ length: n }, (_, j) => j).filter((j) => j !== q);
    const sim = (j: number) => {
      let s = 0;
      for (let t = 0; t < dim; t++) s += (values[q * dim + t] as number) * (values[j * dim + t] as number);
      return s;
    };
    others.sort((a, b) => sim(b) - sim(a) || a - b);
    if (others.slice(0, k).some((j) => labels[j] === labels[q])) hits++;
  }
  return hits / n;
}

describe('recall-at-K', () => {
  const rng = new Rng(4);
  const n = 80;
  const dim = 8;
  const labels = Int32Array.from({ length: n }, () => rng.int(5));
  const values = unitRows(rng, n, dim);
  const input: EvaluationInput = {
    scores: new Float32Array(n * 5),
    labels,
    classes: 5,
    embeddings: { dim, values },
  };
  it.each([1, 2, 5, 10])('matches the brute-force reference at k = %i', (k) => {
    expect(recallAtK(k).evaluate(input)).toBeCloseTo(bruteRecall(values, dim, labels, k), 12);
  });
  it('is 1 on well-separated clusters and is found by name with its output kind', () => {
    const centres = unitRows(new Rng(1), 5, dim);
    const clustered = Float32Array.from(
      { length: n * dim },
      (_, i) => centres[(labels[Math.floor(i / dim)] as number) * dim + (i % dim)] as number,
    );
    expect(recallAtK(1).evaluate({ ...input, embeddings: { dim, values: clustered } })).toBe(1);
    const found = builtinEvaluator('recall-at-1');
    expect(found.ok && [found.value.name, found.value.outputs]).toEqual(['recall-at-1', ['embedding']]);
  });
  it('fails METRIC_INPUT_INVALID without embeddings, and the checks refuse unnormalised or short ones', async () => {
    const r = await evaluateChecked(recallAtK(1), { scores: input.scores, labels, classes: 5 });
    expect(!r.ok && r.error.code).toBe('METRIC_INPUT_INVALID');
    const doubled = Float32Array.from(values, (v) => 2 * v);
    expect(checkEvaluationInput('x', { ...input, embeddings: { dim, values: doubled } })?.details).toMatchObject({
      reason: 'embedding',
      index: 0,
    });
    expect(
      checkEvaluationInput('x', { ...input, embeddings: { dim, values: values.subarray(1) } })?.details,
    ).toMatchObject({ reason: 'embedding' });
  });
});

describe('embeddings reaching a user evaluator module', () => {
  let path: string;
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'embed-eval-'));
    path = join(dir, 'embedding-metric.mjs');
    // Returns (first entry + 1) / 2 of embedding 1, and fails unless it sees dim 3 for 2 rows.
    await writeFile(
      path,
      `export default { name: 'embed-probe', direction: 'maximize', outputs: ['embedding'],
        evaluate({ labels, embeddings }) {
          if (!embeddings || embeddings.dim !== 3 || embeddings.values.length !== 3 * labels.length) throw new Error('no embeddings');
          return (embeddings.values[3] + 1) / 2;
        } };\n`,
    );
  });
  const input: EvaluationInput = {
    scores: Float32Array.of(0.2, 0.9),
    labels: Int32Array.of(0, 1),
    classes: 2,
    embeddings: { dim: 3, values: Float32Array.of(1, 0, 0, 0.6, 0.8, 0) },
  };
  it('in process', async () => {
    const e = await loadEvaluatorModule(path);
    expect(e.ok && e.value.outputs).toEqual(['embedding']);
    if (!e.ok) return;
    const r = await evaluateChecked(e.value, input);
    expect(r.ok && r.value.value).toBeCloseTo(0.8, 6);
  });
  it('in a worker thread', async () => {
    const e = await loadEvaluatorModuleInWorker(path, { maxIdle: 0 });
    expect(e.ok && e.value.outputs).toEqual(['embedding']);
    if (!e.ok) return;
    const r = await evaluateChecked(e.value, input);
    expect(r.ok && r.value.value).toBeCloseTo(0.8, 6);
  });
});

describe('FrozenConvNetModel.embed', () => {
  beforeAll(async () => {
    await useTestBackend();
  });
  it('gives unit 64-d embeddings per task that FiLM moves', () => {
    const rng = new Rng(3);
    const cfg = pooledConvNetConfig;
    const [c1, c2] = cfg.channels;
    const g = filmSide(cfg);
    const frozen: FrozenConvNet = {
      config: cfg,
      classes: 10,
      conv1: { w: rng.normals(9 * c1, 0.5), b: rng.normals(c1, 0.1) },
      conv2: { w: rng.normals(9 * c1 * c2, 0.15), b: rng.normals(c2, 0.1) },
      dense: { w: rng.normals(g * g * c2 * 10, 0.05), b: rng.normals(10, 0.1) },
    };
    const ds = fromDense(
      't',
      Float32Array.from({ length: 5 * 196 }, () => rng.next()),
      196,
      Int32Array.of(0, 1, 2, 3, 4),
      10,
    );
    const model = new FrozenConvNetModel(frozen, ds);
    const rows = Int32Array.of(0, 1, 2, 3, 4);
    const phis = new Float32Array(2 * 128);
    phis.set(rng.normals(128, 0.5), 128);
    const e = model.embed(phis, 2, rows);
    expect(e.length).toBe(2 * 5 * 64);
    for (let i = 0; i < 10; i++) expect(Math.hypot(...e.subarray(i * 64, (i + 1) * 64))).toBeCloseTo(1, 5);
    const moved = Math.max(...Array.from(e.subarray(0, 320), (v, i) => Math.abs(v - (e[320 + i] as number))));
    expect(moved).toBeGreaterThan(1e-3);
    model.dispose();
  });
});
