import { syntheticBinary } from '../helpers/adapter-round-trip.js';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { fromDense, toDense } from '../../shared/data/dataset.js';
import { BalancedSampler } from '../../shared/data/sampler.js';
import { splitRows } from '../../shared/data/split.js';
import { conv3x3 } from '../../shared/models/conv-ops.js';
import { FrozenConvNetModel } from '../../shared/models/convnet-model.js';
import { pretrainConvNet } from '../../shared/models/convnet-pretrain.js';
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

let ds: SparseDataset;
let frozen: FrozenMlp;
let filmFrozen: FrozenMlp;

beforeAll(async () => {
  await useTestBackend();
  ds = syntheticBinary(600, 20, 1);
  const split = splitRows(ds.rows, 1);
  const cfg = { ...defaultMlpConfig, hidden: [12, 8, 4], adapter: { kind: 'input-bias' as const, d: 5 } };
  frozen = await pretrainMlp(
    ds,
    split.train,
    cfg,
    { epochs: 2, batchSize: 64, learningRate: 1e-2, seed: 1 },
    silentProgress,
  );
  filmFrozen = await pretrainMlp(
    ds,
    split.train,
    { ...cfg, adapter: { kind: 'film', layer: 1 } },
    { epochs: 1, batchSize: 64, learningRate: 1e-2, seed: 2 },
    silentProgress,
  );
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

/**
 * The whole MLP from the dense inputs, nothing cached: the reference the cached forward pass of
 * FrozenMlpModel is held to. Logits [n * batch, outUnits]; task i on rows i*batch.. (or, with
 * shared, every task on all of `rows`).
 */
function uncachedLogits(f: FrozenMlp, phi: tf.Tensor2D, rows: Int32Array, n: number, shared: boolean): tf.Tensor2D {
  const taskRows = shared ? Int32Array.from({ length: n * rows.length }, (_, i) => rows[i % rows.length]!) : rows;
  const batch = taskRows.length / n;
  const x = tf.tensor2d(toDense(ds, taskRows), [taskRows.length, ds.features]);
  let h: tf.Tensor2D = x;
  f.layers.forEach((layer, i) => {
    let z = tf.add(tf.matMul(h, tf.tensor2d(layer.w, [layer.in, layer.out])), tf.tensor1d(layer.b)) as tf.Tensor2D;
    const perTask = (v: tf.Tensor2D) =>
      tf.reshape(tf.tile(tf.reshape(v, [n, 1, layer.out]), [1, batch, 1]), [-1, layer.out]);
    if (i === 0 && f.adapter.kind === 'input-bias') {
      const dIn = f.adapter.d - f.adapter.outputBias;
      const a = tf.tensor2d(f.adapter.a, [dIn, layer.out]);
      z = tf.add(z, perTask(tf.matMul(tf.slice(phi, [0, 0], [n, dIn]), a) as tf.Tensor2D));
    }
    if (f.adapter.kind === 'film' && f.adapter.layer === i) {
      const g = perTask(tf.slice(phi, [0, 0], [n, layer.out]));
      const s = perTask(tf.slice(phi, [0, layer.out], [n, layer.out]));
      z = tf.add(tf.mul(z, tf.add(g, 1)), s);
    }
    if (i === f.layers.length - 1 && f.adapter.kind === 'input-bias' && f.adapter.outputBias > 0) {
      const dIn = f.adapter.d - f.adapter.outputBias;
      z = tf.add(z, perTask(tf.mul(tf.slice(phi, [0, dIn], [n, f.adapter.outputBias]), OUTPUT_BIAS_SCALE)));
    }
    h = i < f.layers.length - 1 ? (tf.leakyRelu(z, f.leakyAlpha) as tf.Tensor2D) : z;
  });
  return h;
}

/** Per-task mean binary cross-entropy from logits [n * batch, 1]. */
function binaryTaskLoss(logits: tf.Tensor2D, rows: Int32Array, n: number): tf.Tensor1D {
  const y = tf.tensor1d(Float32Array.from(rows, (r) => ds.labels[r]!));
  const z = tf.reshape(logits, [-1]);
  const ce = tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z)))));
  return tf.mean(tf.reshape(ce, [n, -1]), 1) as tf.Tensor1D;
}

describe('FrozenMlpModel against the uncached network', () => {
  it.each(['input-bias', 'film', 'output-bias'])(
    'gives the %s losses, gradients and predictions of the whole network within float32 noise',
    (kind) => {
      const f =
        kind === 'film'
          ? filmFrozen
          : kind === 'output-bias' && frozen.adapter.kind === 'input-bias'
            ? { ...frozen, adapter: { ...frozen.adapter, d: frozen.adapter.d + 1, outputBias: 1 } }
            : frozen;
      if (kind === 'film') expect(f.adapter).toMatchObject({ kind: 'film', layer: 1 }); // a cached hidden layer
      const model = new FrozenMlpModel(f, ds);
      const d = model.d;
      const rng = new Rng(11);
      const n = 4;
      const batch = 24;
      const phis = rng.normals(n * d, 0.7);
      const rows = Int32Array.from({ length: n * batch }, () => rng.int(ds.rows));
      const evalRows = Int32Array.from({ length: 60 }, (_, i) => 3 * i);
      const cached = model.lossAndGrad(phis, n, rows, batch);
      const scores = model.predict(phis, n, evalRows);
      const reference = tf.tidy(() => {
        let loss: Float32Array = new Float32Array();
        const grad = tf.grad((p: tf.Tensor) => {
          const l = binaryTaskLoss(uncachedLogits(f, p as tf.Tensor2D, rows, n, false), rows, n);
          loss = l.dataSync() as Float32Array;
          return tf.sum(l);
        })(tf.tensor2d(phis, [n, d]));
        const p = tf.sigmoid(uncachedLogits(f, tf.tensor2d(phis, [n, d]), evalRows, n, true));
        return { loss, grad: grad.dataSync() as Float32Array, scores: p.dataSync() as Float32Array };
      });
      const near = (a: Float32Array, b: Float32Array, tol: number) => {
        expect(a.length).toBe(b.length);
        a.forEach((v, i) => expect(Math.abs(v - b[i]!)).toBeLessThan(tol * (1 + Math.abs(b[i]!))));
      };
      near(cached.loss, reference.loss, 1e-5);
      near(cached.grad, reference.grad, 1e-4);
      near(scores, reference.scores, 1e-5);
      model.dispose();
    },
  );
});

describe('FrozenConvNetModel against the uncached network', () => {
  it('gives the losses, gradients and predictions of both convolutions, FiLM and the classifier within float32 noise', async () => {
    const side = 4;
    const rng = new Rng(21);
    const rowsN = 90;
    const labels = Int32Array.from({ length: rowsN }, (_, i) => i % 3);
    const x = Float32Array.from({ length: rowsN * side * side }, (_, k) =>
      Math.round(((labels[Math.floor(k / (side * side))]! + 1) * (k % 5) + rng.next() * 6) % 17),
    );
    const images = fromDense('tiny-images', x, side * side, labels, 3);
    const cfg = { side, channels: [2, 3] as [number, number], leakyAlpha: 0.1 };
    const train = Int32Array.from({ length: 60 }, (_, i) => i);
    const f = await pretrainConvNet(
      images,
      train,
      cfg,
      { epochs: 2, batchSize: 16, learningRate: 1e-2, seed: 3 },
      silentProgress,
    );
    const model = new FrozenConvNetModel(f, images);
    const d = model.d;
    expect(d).toBe(6);
    const n = 3;
    const batch = 10;
    const phis = rng.normals(n * d, 0.5);
    const rows = Int32Array.from({ length: n * batch }, () => rng.int(rowsN));
    const evalRows = Int32Array.from({ length: 30 }, (_, i) => 60 + i);
    const cached = model.lossAndGrad(phis, n, rows, batch);
    const scores = model.predict(phis, n, evalRows);
    const logitsOf = (phi: tf.Tensor2D, r: Int32Array, tasks: number) => {
      const per = r.length / tasks;
      const img = tf.div(tf.tensor4d(toDense(images, r), [r.length, side, side, 1]), 16) as tf.Tensor4D;
      const h1 = tf.leakyRelu(
        tf.add(conv3x3(img, tf.tensor2d(f.conv1.w, [9, 2])), tf.tensor1d(f.conv1.b)),
        0.1,
      ) as tf.Tensor4D;
      const z2 = tf.add(conv3x3(h1, tf.tensor2d(f.conv2.w, [18, 3])), tf.tensor1d(f.conv2.b));
      const task = (v: tf.Tensor2D) =>
        tf.reshape(tf.tile(tf.reshape(v, [tasks, 1, 3]), [1, per, 1]), [r.length, 1, 1, 3]);
      const g = task(tf.slice(phi, [0, 0], [tasks, 3]));
      const b = task(tf.slice(phi, [0, 3], [tasks, 3]));
      const h2 = tf.leakyRelu(tf.add(tf.mul(z2, tf.add(g, 1)), b), 0.1);
      return tf.add(
        tf.matMul(tf.reshape(h2, [r.length, -1]), tf.tensor2d(f.dense.w, [side * side * 3, 3])),
        tf.tensor1d(f.dense.b),
      ) as tf.Tensor2D;
    };
    const reference = tf.tidy(() => {
      let loss: Float32Array = new Float32Array();
      const grad = tf.grad((p: tf.Tensor) => {
        const y = tf.oneHot(
          tf.tensor1d(
            Int32Array.from(rows, (r) => labels[r]!),
            'int32',
          ),
          3,
        );
        const picked = tf.sum(tf.mul(tf.logSoftmax(logitsOf(p as tf.Tensor2D, rows, n)), y), 1);
        const l = tf.neg(tf.mean(tf.reshape(picked, [n, batch]), 1));
        loss = l.dataSync() as Float32Array;
        return tf.sum(l);
      })(tf.tensor2d(phis, [n, d]));
      const shared = Int32Array.from({ length: n * evalRows.length }, (_, i) => evalRows[i % evalRows.length]!);
      const p = tf.softmax(logitsOf(tf.tensor2d(phis, [n, d]), shared, n));
      return { loss, grad: grad.dataSync() as Float32Array, scores: p.dataSync() as Float32Array };
    });
    const near = (a: Float32Array, b: Float32Array, tol: number) => {
      expect(a.length).toBe(b.length);
      a.forEach((v, i) => expect(Math.abs(v - b[i]!)).toBeLessThan(tol * (1 + Math.abs(b[i]!))));
    };
    near(cached.loss, reference.loss, 1e-5);
    near(cached.grad, reference.grad, 1e-4);
    near(scores, reference.scores, 1e-5);
    model.dispose();
  });
});

afterAll(() => {
  tf.disposeVariables();
});
