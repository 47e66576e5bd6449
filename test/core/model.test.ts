import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { toDense } from '../../shared/data/dataset.js';
import { parseLibsvm } from '../../shared/data/libsvm.js';
import { BalancedSampler } from '../../shared/data/sampler.js';
import { splitRows } from '../../shared/data/split.js';
import { FrozenMlpModel } from '../../shared/models/frozen-mlp.js';
import { defaultMlpConfig, type FrozenMlp, OUTPUT_BIAS_SCALE, pretrainMlp } from '../../shared/models/mlp.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { generateTrajectories } from '../../shared/method/trajectory.js';
import {
  labelTask,
  paperTrainDefaults,
  trainOffline,
  trainReptileOnline,
  tunedTrainDefaults,
} from '../../shared/method/value-function-training.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';

function synthetic(rows: number, features: number, seed: number): SparseDataset {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    const active = rng.sampleDistinct(1, features + 1, 5);
    const score = active.reduce((s, i) => s + (i % 3 === 0 ? 1 : -0.4), 0) + rng.normal() * 0.5;
    lines.push(`${score > 0 ? 1 : -1} ${active.map((i) => `${i}:1`).join(' ')}`);
  }
  const parsed = parseLibsvm(lines.join('\n'), { features, name: 'synthetic' });
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

let ds: SparseDataset;
let frozen: FrozenMlp;
let filmFrozen: FrozenMlp;

beforeAll(async () => {
  await useTestBackend();
  ds = synthetic(600, 20, 1);
  const split = splitRows(ds.rows, 1);
  const x = tf.tensor2d(toDense(ds), [ds.rows, ds.features]);
  const cfg = { ...defaultMlpConfig, hidden: [12, 8, 4], adapter: { kind: 'input-bias' as const, d: 5 } };
  frozen = await pretrainMlp(
    ds,
    split.train,
    x,
    cfg,
    { epochs: 2, batchSize: 64, learningRate: 1e-2, seed: 1 },
    silentProgress,
  );
  filmFrozen = await pretrainMlp(
    ds,
    split.train,
    x,
    { ...cfg, adapter: { kind: 'film', layer: 1 } },
    { epochs: 1, batchSize: 64, learningRate: 1e-2, seed: 2 },
    silentProgress,
  );
  x.dispose();
});

describe('FrozenMlpModel', () => {
  const withOutputBias = (): FrozenMlp => {
    if (frozen.adapter.kind !== 'input-bias') throw new Error('input-bias expected');
    return { ...frozen, adapter: { ...frozen.adapter, d: frozen.adapter.d + 1, outputBias: 1 } };
  };
  it.each(['input-bias', 'film', 'output-bias'])(
    'has %s adapter gradients equal to finite differences of the loss',
    (kind) => {
      const model = new FrozenMlpModel(
        kind === 'film' ? filmFrozen : kind === 'output-bias' ? withOutputBias() : frozen,
        ds,
      );
      const d = model.d;
      expect(d).toBe(kind === 'film' ? 16 : kind === 'output-bias' ? 6 : 5);
      const rng = new Rng(4);
      const n = 3;
      const batch = 16;
      const phis = rng.normals(n * d, 0.5);
      const rows = Int32Array.from({ length: n * batch }, () => rng.int(ds.rows));
      const { loss, grad } = model.lossAndGrad(phis, n, rows, batch);
      expect(Array.from(model.loss(phis, n, rows, batch))).toEqual(Array.from(loss).map((v) => expect.closeTo(v, 5)));
      const h = 1e-2;
      for (const [task, j] of [
        [0, 0],
        [1, 2],
        [2, d - 1],
      ] as const) {
        const p = Float32Array.from(phis);
        p[task * d + j]! += h;
        const m = Float32Array.from(phis);
        m[task * d + j]! -= h;
        const fd = (model.loss(p, n, rows, batch)[task]! - model.loss(m, n, rows, batch)[task]!) / (2 * h);
        expect(Math.abs(fd - grad[task * d + j]!)).toBeLessThan(2e-3 + 0.02 * Math.abs(fd));
      }
      model.dispose();
    },
  );

  it('at phi = 0 the input-bias adapter leaves predictions unchanged whatever A is', () => {
    const model = new FrozenMlpModel(frozen, ds);
    const rows = Int32Array.from({ length: 10 }, (_, i) => i);
    const zero = model.predict(new Float32Array(model.d), 1, rows);
    const moved = model.predict(new Float32Array(model.d).fill(1), 1, rows);
    expect(zero.every((v) => v > 0 && v < 1)).toBe(true);
    expect(Array.from(zero)).not.toEqual(Array.from(moved));
    model.dispose();
  });

  it('moves the logit by OUTPUT_BIAS_SCALE per unit of the output dynamic bias, and nothing else', () => {
    const plain = new FrozenMlpModel(frozen, ds);
    const model = new FrozenMlpModel(withOutputBias(), ds);
    const rows = Int32Array.from({ length: 20 }, (_, i) => i);
    const inputPhi = Float32Array.from([0.3, -0.2, 0.1, 0, 0.5]);
    const base = plain.predict(inputPhi, 1, rows);
    const same = model.predict(Float32Array.from([...inputPhi, 0]), 1, rows);
    const shifted = model.predict(Float32Array.from([...inputPhi, -0.7]), 1, rows);
    base.forEach((p, i) => {
      expect(same[i]).toBeCloseTo(p, 6);
      const logit = Math.log(p / (1 - p)) - 0.7 * OUTPUT_BIAS_SCALE;
      expect(shifted[i]).toBeCloseTo(1 / (1 + Math.exp(-logit)), 5);
    });
    plain.dispose();
    model.dispose();
  });

  it('leaks no tensors across repeated gradients, predictions, trajectories and training', async () => {
    const model = new FrozenMlpModel(frozen, ds);
    const sampler = new BalancedSampler(
      Int32Array.from({ length: 400 }, (_, i) => i),
      ds.labels,
      2,
    );
    const rows = Int32Array.from({ length: 50 }, (_, i) => i);
    const run = async () => {
      model.lossAndGrad(
        new Float32Array(2 * model.d),
        2,
        Int32Array.from({ length: 32 }, (_, i) => i),
        16,
      );
      model.predict(new Float32Array(3 * model.d), 3, rows);
      model.loss(new Float32Array(model.d), 1, rows, 50);
      generateTrajectories(
        model,
        sampler,
        { tasks: 3, steps: 4, batchSize: 8, optimizer: 'adam', learningRate: 0.05, phi0Std: 1, queries: 3, seed: 1 },
        silentProgress,
      );
      const rng = new Rng(1);
      const tasks = [0, 1, 2].map(() =>
        labelTask(rng.normals(5 * model.d), rng.normals(5), Float32Array.from([1, 1, 1, 1, 1]), 2),
      );
      (
        await trainOffline(
          tasks,
          model.d,
          { ...tunedTrainDefaults, epochs: 2, taskBatch: 2, hidden: [8, 4] },
          silentProgress,
        )
      ).dispose();
      (await trainReptileOnline(tasks, model.d, { ...paperTrainDefaults, hidden: [8, 4] }, silentProgress)).dispose();
    };
    await run(); // warm-up: caches (validation rows) are created once
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await run();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

afterAll(() => {
  tf.disposeVariables();
});
