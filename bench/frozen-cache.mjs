#!/usr/bin/env node
// The ConvNet's fine-tuning step (80 tasks x 64 images, digits, FiLM on the second convolution)
// with the second convolution computed per step (the path before issue 20, written out here)
// and with it cached once per image (FrozenConvNetModel): the gradients' largest difference
// and the milliseconds per step, two rounds. Usage: npm run build && node bench/frozen-cache.mjs
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../dist/shared/adapters/compute-backend.js';
import { loadDataset } from '../dist/shared/adapters/dataset.fs.js';
import { toDense } from '../dist/shared/data/dataset.js';
import { conv3x3 } from '../dist/shared/models/conv-ops.js';
import { defaultConvNetConfig } from '../dist/shared/models/convnet.js';
import { FrozenConvNetModel } from '../dist/shared/models/convnet-model.js';
import { pretrainConvNet } from '../dist/shared/models/convnet-pretrain.js';
import { silentProgress } from '../dist/shared/ports/progress.port.js';
import { Rng } from '../dist/shared/util/random.js';
await selectBackend('wasm');
const ds = (await loadDataset('digits')).value;
const train = Int32Array.from({ length: 1200 }, (_, i) => i);
const f = await pretrainConvNet(
  ds,
  train,
  defaultConvNetConfig,
  { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 1 },
  silentProgress,
);
const model = new FrozenConvNetModel(f, ds);
const rng = new Rng(2);
const n = 80,
  B = 64,
  d = model.d;
const phis = rng.normals(n * d, 0.5);
const rows = Int32Array.from({ length: n * B }, () => rng.int(1200));
// old path: conv1 cached activations, conv2 per step
const h1all = tf.tidy(() =>
  tf
    .leakyRelu(
      tf.add(
        conv3x3(tf.div(tf.tensor4d(toDense(ds), [ds.rows, 8, 8, 1]), 16), tf.tensor2d(f.conv1.w, [9, 8])),
        tf.tensor1d(f.conv1.b),
      ),
      0.1,
    )
    .dataSync(),
);
const k2 = tf.tensor2d(f.conv2.w, [72, 16]),
  b2 = tf.tensor1d(f.conv2.b),
  wd = tf.tensor2d(f.dense.w, [1024, 10]),
  bd = tf.tensor1d(f.dense.b);
function oldStep() {
  return tf.tidy(() => {
    const per = 512;
    const out = new Float32Array(rows.length * per);
    rows.forEach((r, i) => out.set(h1all.subarray(r * per, (r + 1) * per), i * per));
    const first = tf.tensor4d(out, [rows.length, 8, 8, 8]);
    const y = tf.oneHot(
      tf.tensor1d(
        Int32Array.from(rows, (r) => ds.labels[r]),
        'int32',
      ),
      10,
    );
    const g = tf.grad((p) => {
      const z = tf.reshape(tf.add(conv3x3(first, k2), b2), [n, B, 64, 16]);
      const gamma = tf.reshape(tf.slice(p, [0, 0], [n, 16]), [n, 1, 1, 16]);
      const beta = tf.reshape(tf.slice(p, [0, 16], [n, 16]), [n, 1, 1, 16]);
      const h = tf.leakyRelu(tf.add(tf.mul(z, tf.add(gamma, 1)), beta), 0.1);
      const logits = tf.add(tf.matMul(tf.reshape(h, [n * B, 1024]), wd), bd);
      return tf.sum(tf.neg(tf.mean(tf.reshape(tf.sum(tf.mul(tf.logSoftmax(logits), y), 1), [n, B]), 1)));
    })(tf.tensor2d(phis, [n, d]));
    return g.dataSync();
  });
}
const a = oldStep(),
  b = model.lossAndGrad(phis, n, rows, B).grad;
let md = 0;
for (let i = 0; i < a.length; i++) md = Math.max(md, Math.abs(a[i] - b[i]));
console.log('max grad diff', md);
for (let rep = 0; rep < 2; rep++) {
  let t0 = performance.now();
  for (let i = 0; i < 5; i++) oldStep();
  const to = (performance.now() - t0) / 5;
  t0 = performance.now();
  for (let i = 0; i < 5; i++) model.lossAndGrad(phis, n, rows, B);
  const tn = (performance.now() - t0) / 5;
  console.log(`80 tasks x 64 images: conv2 per step ${to.toFixed(0)} ms, conv2 cached ${tn.toFixed(0)} ms`);
}
