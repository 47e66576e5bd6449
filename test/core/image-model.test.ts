import { beforeAll, describe, expect, it } from 'vitest';
import { fromDense } from '../../shared/data/dataset.js';
import { aucpr, classAucpr, mcr } from '../../shared/metrics/builtins.js';
import { headroom } from '../../shared/report/headroom.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import { type FrozenConvNet, filmSide, pooledConvNetConfig } from '../../shared/models/convnet.js';
import { FrozenConvNetModel } from '../../shared/models/convnet-model.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';
import { crossEntropy, referenceLogits, referenceMaps } from '../helpers/convnet-reference.js';

describe('the pooled ConvNet (Fashion-MNIST, FiLM d = 128)', () => {
  beforeAll(async () => {
    await useTestBackend();
  });
  const cfg = pooledConvNetConfig;
  const [c1, c2] = cfg.channels;
  const rng = new Rng(5);
  const g = filmSide(cfg);
  const frozen: FrozenConvNet = {
    config: cfg,
    classes: 10,
    conv1: { w: rng.normals(9 * c1, 0.5), b: rng.normals(c1, 0.1) },
    conv2: { w: rng.normals(9 * c1 * c2, 0.15), b: rng.normals(c2, 0.1) },
    dense: { w: rng.normals(g * g * c2 * 10, 0.05), b: rng.normals(10, 0.1) },
  };
  const rowsN = 8;
  const labels = Int32Array.from({ length: rowsN }, (_, i) => (i * 3) % 10);
  const pixels = Float32Array.from({ length: rowsN * 196 }, () => (rng.next() < 0.4 ? 0 : rng.next()));
  const ds = fromDense('tiny-fashion', pixels, 196, labels, 10);
  const maps = Array.from({ length: rowsN }, (_, r) => referenceMaps(frozen, pixels.subarray(r * 196, (r + 1) * 196)));

  it('has d = 128 and 4 x 4 x 64 cached maps', () => {
    const model = new FrozenConvNetModel(frozen, ds);
    expect([model.d, g]).toEqual([128, 4]);
    model.dispose();
  });

  it('predicts what the float64 reference network predicts (cached frozen layers, pooling, FiLM)', () => {
    const model = new FrozenConvNetModel(frozen, ds);
    const n = 2;
    const phis = rng.normals(n * 128, 0.3);
    const rows = Int32Array.from({ length: rowsN }, (_, i) => i);
    const p = model.predict(phis, n, rows);
    for (let t = 0; t < n; t++)
      for (let r = 0; r < rowsN; r++) {
        const z = referenceLogits(frozen, maps[r] as Float64Array, phis.subarray(t * 128, (t + 1) * 128));
        const m = Math.max(...z);
        const e = z.map((v) => Math.exp(v - m));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let k = 0; k < 10; k++) expect(p[(t * rowsN + r) * 10 + k]).toBeCloseTo((e[k] as number) / sum, 5);
      }
    model.dispose();
  });

  it('gives FiLM gradients (all 128 entries of each task) that match central finite differences of the float64 loss', () => {
    const model = new FrozenConvNetModel(frozen, ds);
    const n = 2;
    const batch = 4;
    const phis = rng.normals(n * 128, 0.3);
    const rows = Int32Array.from({ length: n * batch }, (_, i) => (i * 5 + 1) % rowsN);
    const { loss, grad } = model.lossAndGrad(phis, n, rows, batch);
    const refLoss = (t: number, phi: Float64Array) => {
      let s = 0;
      for (let b = 0; b < batch; b++) {
        const r = rows[t * batch + b] as number;
        s += crossEntropy(referenceLogits(frozen, maps[r] as Float64Array, phi), labels[r] as number);
      }
      return s / batch;
    };
    const h = 1e-5;
    let worst = 0;
    for (let t = 0; t < n; t++) {
      const phi = Float64Array.from(phis.subarray(t * 128, (t + 1) * 128));
      expect(loss[t]).toBeCloseTo(refLoss(t, phi), 4);
      for (let j = 0; j < 128; j++) {
        const up = phi.slice();
        const down = phi.slice();
        up[j] = (up[j] as number) + h;
        down[j] = (down[j] as number) - h;
        const fd = (refLoss(t, up) - refLoss(t, down)) / (2 * h);
        const got = grad[t * 128 + j] as number;
        worst = Math.max(worst, Math.abs(got - fd) / (1e-3 + Math.abs(fd)));
      }
    }
    // float32 gradients against float64 differences: a few parts in 10^3 at worst.
    expect(worst).toBeLessThan(5e-3);
    model.dispose();
  });
});

describe('aucpr-class-K', () => {
  it('is aucpr of the class-K column against label === K', () => {
    const rng = new Rng(9);
    const n = 200;
    const classes = 4;
    const labels = Int32Array.from({ length: n }, () => rng.int(classes));
    const scores = Float32Array.from({ length: n * classes }, () => rng.next());
    const binaryScores = Float32Array.from({ length: n }, (_, i) => scores[i * classes + 2] as number);
    const binaryLabels = Int32Array.from(labels, (y) => (y === 2 ? 1 : 0));
    const expected = aucpr.evaluate({ scores: binaryScores, labels: binaryLabels, classes: 2 }) as number;
    expect(classAucpr(2).evaluate({ scores, labels, classes })).toBe(expected);
    const byName = builtinEvaluator('aucpr-class-2');
    expect(byName.ok && [byName.value.name, byName.value.direction]).toEqual(['aucpr-class-2', 'maximize']);
  });
  it('is 1 when the class-K column ranks every K first, and fails METRIC_INPUT_INVALID for a class the task lacks', () => {
    const labels = Int32Array.of(0, 1, 2, 1);
    const scores = Float32Array.of(0.8, 0.1, 0.1, 0.1, 0.8, 0.1, 0.3, 0.3, 0.4, 0.2, 0.7, 0.1);
    expect(classAucpr(1).evaluate({ scores, labels, classes: 3 })).toBe(1);
    expect(() => classAucpr(3).evaluate({ scores, labels, classes: 3 })).toThrow(
      expect.objectContaining({ code: 'METRIC_INPUT_INVALID' }),
    );
  });
});

describe('headroom on a multi-class task', () => {
  it('finds the per-class offsets that undo a prior shift (mcr), never worse than the scores themselves', async () => {
    const rng = new Rng(12);
    const n = 300;
    const classes = 3;
    const labels = Int32Array.from({ length: n }, () => rng.int(classes));
    // Confident on the true class, but class 0 squeezed by a factor 0.05: many 0s called 1 or 2.
    const scores = new Float32Array(n * classes);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let c = 0; c < classes; c++) {
        const p = (c === labels[i] ? 3 : 1 + rng.next()) * (c === 0 ? 0.05 : 1);
        scores[i * classes + c] = p;
        sum += p;
      }
      for (let c = 0; c < classes; c++) scores[i * classes + c] = (scores[i * classes + c] as number) / sum;
    }
    const plain = mcr.evaluate({ scores, labels, classes }) as number;
    const h = await headroom(mcr, scores, { labels, classes });
    expect(plain).toBeGreaterThan(0.2);
    expect(h.globalThreshold).not.toBeNull();
    expect(h.globalThreshold as number).toBeLessThan(plain - 0.15);
    expect([h.contextRule, h.rule]).toEqual([null, null]);
  });
});
