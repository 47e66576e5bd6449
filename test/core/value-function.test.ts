import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import { ValueFunctionNet } from '../../shared/method/value-function.js';
import { labelTask } from '../../shared/method/value-function-training.js';
import { selectHardPairs, valueFunctionLoss } from '../../shared/method/value-function-loss.js';
import { type ValueFunctionCheckpoint, valueFunctionCheckpointSchema } from '../../shared/schemas/checkpoint.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

function checkpointFrom(net: ValueFunctionNet, d: number, norm = true): ValueFunctionCheckpoint {
  const rng = new Rng(5);
  return valueFunctionCheckpointSchema.parse({
    format: 'metricopt.value-function',
    schemaVersion: 1,
    id: 'test',
    version: 1,
    createdAt: new Date(0).toISOString(),
    libraryVersion: 'test',
    d,
    metric: { name: 'mcr', direction: 'minimize' },
    recipe: 'paper',
    dataset: 'synthetic',
    adapter: { kind: 'input-bias', d },
    inputNormalisation: norm
      ? { mean: Array.from(rng.normals(d, 0.5)), std: Array.from({ length: d }, () => 0.5 + rng.next()) }
      : { mean: Array(d).fill(0), std: Array(d).fill(1) },
    targetNormalisation: norm ? { mean: 0.2, std: 0.05 } : { mean: 0, std: 1 },
    hiddenActivation: 'relu',
    embeddingLayer: 3,
    members: [{ layers: net.toLayers() }],
    training: { tasks: 0, heldOutTasks: 0, heldOutMae: null, constantMae: null, spearman: null },
  });
}

describe('CompiledValueFunction', () => {
  it('equals the tfjs model (BatchNorm folded) to 1e-5', () => {
    const d = 16;
    const net = new ValueFunctionNet({ d, hidden: [64, 32, 32, 16], batchNorm: true }, 3);
    // Give BatchNorm non-trivial running statistics and affine parameters.
    const rng = new Rng(9);
    net.runningMean.forEach((m) => m.forEach((_, i) => (m[i] = rng.normal() * 0.3)));
    net.runningVar.forEach((v) => v.forEach((_, i) => (v[i] = 0.5 + rng.next())));
    net.gammas.forEach((g) => g.assign(tf.tensor1d(rng.normals(g.shape[0]!, 0.2).map((x) => 1 + x))));
    net.betas.forEach((b) => b.assign(tf.tensor1d(rng.normals(b.shape[0]!, 0.1))));
    const vf = new CompiledValueFunction(checkpointFrom(net, d, false));
    const x = rng.normals(20 * d);
    const expected = tf.tidy(() => net.forward(tf.tensor2d(x, [20, d])).out.dataSync());
    const got = vf.predict(x, 20);
    for (let i = 0; i < 20; i++) expect(Math.abs(got[i]! - expected[i]!)).toBeLessThan(1e-5);
    net.dispose();
  });

  it('has gradients equal to central finite differences', () => {
    const d = 16;
    const net = new ValueFunctionNet({ d, hidden: [64, 32, 32, 16], batchNorm: false }, 4);
    const ck = checkpointFrom(net, d);
    ck.members.push({ layers: new ValueFunctionNet({ d, hidden: [64, 32, 32, 16], batchNorm: false }, 8).toLayers() });
    const vf = new CompiledValueFunction(ck);
    const rng = new Rng(2);
    for (let trial = 0; trial < 5; trial++) {
      const phi = rng.normals(d);
      const g = new Float32Array(d);
      vf.valueAndGradient(phi, g);
      const h = 1e-2;
      for (let i = 0; i < d; i++) {
        const p = Float32Array.from(phi);
        const m = Float32Array.from(phi);
        p[i]! += h;
        m[i]! -= h;
        const fd = (vf.value(p) - vf.value(m)) / (2 * h);
        expect(Math.abs(fd - g[i]!)).toBeLessThan(2e-3 * Math.max(1, Math.abs(g[i]!)) + 1e-4);
      }
    }
    const batch = vf.predictWithGradients(rng.normals(3 * d), 3);
    expect(batch.gradients).toHaveLength(3 * d);
    net.dispose();
  });
});

describe('valueFunctionLoss', () => {
  it('has weight gradients equal to finite differences', () => {
    const d = 4;
    const t1 = 6;
    const rng = new Rng(1);
    const net = new ValueFunctionNet({ d, hidden: [8, 6], batchNorm: false }, 2);
    const tasks = [0, 1].map(() =>
      labelTask(
        rng.normals(t1 * d),
        Float32Array.from([0.1, 0.12, 0.3, 0.31, 0.6, 0.2]),
        Float32Array.from({ length: t1 }, () => 0.01 + 0.05 * rng.next()),
        2,
      ),
    );
    const x = new Float32Array(2 * t1 * d);
    tasks.forEach((t, i) => x.set(t.x, i * t1 * d));
    const mean = Float32Array.from(tasks.flatMap((t) => Array.from(t.labels.mean)));
    const std = Float32Array.from(tasks.flatMap((t) => Array.from(t.labels.std)));
    // Fix the hard pairs at the starting weights (selection is piecewise constant).
    const emb = tf.tidy(() => net.forward(tf.tensor2d(x, [2 * t1, d])).embedding.dataSync() as Float32Array);
    const pairs = selectHardPairs(
      emb,
      6,
      tasks.map((t) => t.masks),
      t1,
    );
    const lossAt = () =>
      tf.tidy(() => {
        const { out, embedding } = net.forward(tf.tensor2d(x, [2 * t1, d]));
        return tf.mean(
          valueFunctionLoss({
            out: tf.reshape(out, [2, t1]),
            embedding,
            mean: tf.tensor2d(mean, [2, t1]),
            std: tf.tensor2d(std, [2, t1]),
            ...pairs,
          }).total,
        ) as tf.Scalar;
      });
    const w = net.weights[0]!;
    const { grads } = tf.variableGrads(() => lossAt(), [w]);
    const g = grads[w.name]!.dataSync();
    const base = Float32Array.from(w.dataSync());
    const h = 1e-3;
    for (const idx of [0, 5, 17, 30]) {
      const plus = Float32Array.from(base);
      plus[idx]! += h;
      w.assign(tf.tensor2d(plus, w.shape as [number, number]));
      const lp = lossAt().dataSync()[0]!;
      const minus = Float32Array.from(base);
      minus[idx]! -= h;
      w.assign(tf.tensor2d(minus, w.shape as [number, number]));
      const lm = lossAt().dataSync()[0]!;
      w.assign(tf.tensor2d(base, w.shape as [number, number]));
      expect(Math.abs((lp - lm) / (2 * h) - g[idx]!)).toBeLessThan(5e-3 * Math.max(1, Math.abs(g[idx]!)));
    }
    Object.values(grads).forEach((t) => t.dispose());
    net.dispose();
  });
});
