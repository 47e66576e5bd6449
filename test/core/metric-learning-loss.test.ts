import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BalancedSampler } from '../../shared/data/sampler.js';
import { fromDense } from '../../shared/data/dataset.js';
import { BatchedOptimizer } from '../../shared/method/optimizers.js';
import { type FrozenConvNet, filmSide, pooledConvNetConfig } from '../../shared/models/convnet.js';
import { FrozenConvNetModel } from '../../shared/models/convnet-model.js';
import { supervisedContrastiveLoss } from '../../shared/models/metric-learning-loss.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';
import { referenceEmbedding, referenceMaps } from '../helpers/convnet-reference.js';

/** The supervised contrastive loss of one batch in float64 loops, from its definition. */
function referenceSupCon(e: ArrayLike<number>[], labels: ArrayLike<number>, tau: number): number {
  const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let s = 0;
    for (let t = 0; t < a.length; t++) s += (a[t] as number) * (b[t] as number);
    return s;
  };
  let total = 0;
  let anchors = 0;
  for (let i = 0; i < e.length; i++) {
    const others = e.map((_, a) => a).filter((a) => a !== i);
    const positives = others.filter((p) => labels[p] === labels[i]);
    if (positives.length === 0) continue;
    const denom = others.reduce((s, a) => s + Math.exp(dot(e[i] as number[], e[a] as number[]) / tau), 0);
    let li = 0;
    for (const p of positives) li -= Math.log(Math.exp(dot(e[i] as number[], e[p] as number[]) / tau) / denom);
    total += li / positives.length;
    anchors++;
  }
  return anchors === 0 ? 0 : total / anchors;
}

const unit = (v: Float64Array) => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};

beforeAll(async () => {
  await useTestBackend();
});

describe('supervisedContrastiveLoss', () => {
  it('matches its float64 definition per task, leaving out anchors without a positive', () => {
    const rng = new Rng(4);
    const n = 2;
    const batch = 7;
    const dim = 5;
    const rows = Array.from({ length: n * batch }, () => unit(Float64Array.from(rng.normals(dim))));
    // Task 0: label 3 appears once (an anchor with no positive); task 1: every label twice or more.
    const labels = Int32Array.of(0, 0, 1, 1, 1, 2, 3, 0, 1, 0, 1, 2, 2, 0);
    for (const tau of [0.1, 0.5]) {
      const got = tf.tidy(() =>
        Array.from(
          supervisedContrastiveLoss(tau)(
            tf.tensor3d(Float32Array.from(rows.flatMap((r) => Array.from(r))), [n, batch, dim]),
            tf.tensor2d(labels, [n, batch], 'int32'),
          ).dataSync(),
        ),
      );
      for (let t = 0; t < n; t++) {
        const ref = referenceSupCon(rows.slice(t * batch, (t + 1) * batch), labels.subarray(t * batch), tau);
        expect(got[t]).toBeCloseTo(ref, 4);
      }
    }
  });

  it('is 0 for a task with no positive pair, and leaks no tensor', () => {
    const before = tf.memory().numTensors;
    const got = tf.tidy(() =>
      Array.from(
        supervisedContrastiveLoss(0.1)(
          tf.tensor3d(Float32Array.of(1, 0, 0, 1, -1, 0), [1, 3, 2]),
          tf.tensor2d(Int32Array.of(0, 1, 2), [1, 3], 'int32'),
        ).dataSync(),
      ),
    );
    expect(got).toHaveLength(1);
    expect(Math.abs(got[0] as number)).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the ConvNet embedding loss (FiLM, d = 128)', () => {
  const cfg = pooledConvNetConfig;
  const [c1, c2] = cfg.channels;
  const g = filmSide(cfg);
  const rng = new Rng(11);
  const frozen: FrozenConvNet = {
    config: cfg,
    classes: 3,
    conv1: { w: rng.normals(9 * c1, 0.5), b: rng.normals(c1, 0.1) },
    conv2: { w: rng.normals(9 * c1 * c2, 0.15), b: rng.normals(c2, 0.1) },
    dense: { w: rng.normals(g * g * c2 * 3, 0.05), b: rng.normals(3, 0.1) },
  };

  it('gives gradients (all 128 entries of each task) that match central finite differences of the float64 loss', () => {
    const rowsN = 8;
    const labels = Int32Array.from({ length: rowsN }, (_, i) => i % 3);
    const pixels = Float32Array.from({ length: rowsN * 196 }, () => (rng.next() < 0.4 ? 0 : rng.next()));
    const ds = fromDense('tiny-fashion', pixels, 196, labels, 3);
    const maps = Array.from({ length: rowsN }, (_, r) =>
      referenceMaps(frozen, pixels.subarray(r * 196, (r + 1) * 196)),
    );
    const model = new FrozenConvNetModel(frozen, ds);
    const n = 2;
    const batch = 6;
    const tau = 0.2;
    const phis = rng.normals(n * 128, 0.3);
    const rows = Int32Array.from({ length: n * batch }, (_, i) => (i * 5 + 1) % rowsN);
    const { loss, grad } = model.embeddingLossAndGrad(phis, n, rows, batch, supervisedContrastiveLoss(tau));
    const refLoss = (t: number, phi: Float64Array) => {
      const ids = Array.from(rows.subarray(t * batch, (t + 1) * batch));
      const e = ids.map((r) => referenceEmbedding(frozen, maps[r] as Float64Array, phi));
      return referenceSupCon(
        e,
        ids.map((r) => labels[r] as number),
        tau,
      );
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

  it('decreases under Adam on a tiny image set whose classes are separable, without leaking tensors', () => {
    // Three classes of 14 x 14 images: a bright horizontal bar, a vertical bar, or a 4 x 4
    // block, each at a random place, on faint noise: separable, but not by the random
    // backbone's embeddings as they stand.
    const perClass = 20;
    const rowsN = 3 * perClass;
    const labels = Int32Array.from({ length: rowsN }, (_, i) => i % 3);
    const pixels = new Float32Array(rowsN * 196);
    for (let r = 0; r < rowsN; r++) {
      const img = pixels.subarray(r * 196, (r + 1) * 196);
      for (let p = 0; p < 196; p++) img[p] = 0.1 * rng.next();
      const y0 = 2 + rng.int(8);
      const x0 = 2 + rng.int(8);
      for (let a = 0; a < 4; a++)
        for (let b = 0; b < 4; b++) {
          const [y, x] =
            labels[r] === 0 ? [y0, x0 + 4 * a + b - 6] : labels[r] === 1 ? [y0 + 4 * a + b - 6, x0] : [y0 + a, x0 + b];
          if (y >= 0 && y < 14 && x >= 0 && x < 14) img[y * 14 + x] = 1;
        }
    }
    const ds = fromDense('bars', pixels, 196, labels, 3);
    const model = new FrozenConvNetModel(frozen, ds);
    const all = Int32Array.from({ length: rowsN }, (_, i) => i);
    const loss = supervisedContrastiveLoss(0.1);
    const whole = (phi: Float32Array) => model.embeddingLossAndGrad(phi, 1, all, rowsN, loss).loss[0] as number;
    const phi = new Float32Array(128);
    const before = whole(phi);
    const opt = new BatchedOptimizer('adam', 0.05, 128);
    const sampler = new BalancedSampler(all, labels, 3);
    const batch = new Int32Array(12);
    const batchRng = new Rng(2);
    const tensors = tf.memory().numTensors;
    for (let t = 0; t < 40; t++) {
      sampler.sampleInto(batchRng, batch);
      opt.step(phi, model.embeddingLossAndGrad(phi, 1, batch, batch.length, loss).grad);
    }
    expect(tf.memory().numTensors).toBe(tensors);
    const after = whole(phi);
    // Seen: 3.97 -> 3.04 (-23 %).
    expect(after).toBeLessThan(0.85 * before);
    model.dispose();
  });
});
