#!/usr/bin/env node
// Pre-training of the pooled ConvNet (FiLM d = 128) on Fashion-MNIST (14 x 14) with cross-entropy:
// time, then test accuracy and the frozen model's step and prediction cost, with the demo's
// pre-training settings (defaultPretrainConfig: batch 256, Adam 1e-3) and no rare class. Needs the data cache
// (npx metricopt data fetch fashion-mnist).
// Usage: npm run build && nice -n 10 node bench/fashion-pretrain.mjs [epochs=3] [seed=1]
import { selectBackend } from '../dist/shared/adapters/compute-backend.js';
import { loadDataset } from '../dist/shared/adapters/dataset.fs.js';
import { stratifiedSplit } from '../dist/shared/data/image-set.js';
import { pooledConvNetConfig } from '../dist/shared/models/convnet.js';
import { FrozenConvNetModel } from '../dist/shared/models/convnet-model.js';
import { pretrainConvNet } from '../dist/shared/models/convnet-pretrain.js';
import { defaultPretrainConfig } from '../dist/shared/models/mlp.js';
import { silentProgress } from '../dist/shared/ports/progress.port.js';
import { Rng } from '../dist/shared/util/random.js';

const epochs = Number(process.argv[2] ?? 3);
const seed = Number(process.argv[3] ?? 1);
const backend = (await selectBackend('auto')).name;
const ds = (await loadDataset('fashion-mnist')).value;
if (!ds) throw new Error('run npx metricopt data fetch fashion-mnist first');
const split = stratifiedSplit(ds.labels, ds.classes, seed, [45, 5, 10]);
let t = performance.now();
const frozen = await pretrainConvNet(
  ds,
  split.train,
  pooledConvNetConfig,
  { ...defaultPretrainConfig, epochs, seed },
  silentProgress,
);
const pretrainS = (performance.now() - t) / 1000;
t = performance.now();
const model = new FrozenConvNetModel(frozen, ds);
const cacheS = (performance.now() - t) / 1000;
const acc = (rows) => {
  const p = model.predict(new Float32Array(model.d), 1, rows);
  let hit = 0;
  rows.forEach((r, i) => {
    let best = 0;
    for (let c = 1; c < 10; c++) if (p[i * 10 + c] > p[i * 10 + best]) best = c;
    if (best === ds.labels[r]) hit++;
  });
  return hit / rows.length;
};
const rng = new Rng(2);
const n = 50;
const B = 64;
const phis = rng.normals(n * model.d, 0.3);
const rows = Int32Array.from({ length: n * B }, () => split.train[rng.int(split.train.length)]);
model.lossAndGrad(phis, n, rows, B);
t = performance.now();
for (let i = 0; i < 5; i++) model.lossAndGrad(phis, n, rows, B);
const stepMs = (performance.now() - t) / 5;
t = performance.now();
model.predict(phis.subarray(0, 10 * model.d), 10, split.val);
const predictMs = performance.now() - t;
console.log(
  JSON.stringify({
    backend,
    epochs,
    seed,
    d: model.d,
    train: split.train.length,
    val: split.val.length,
    test: split.test.length,
    pretrainS: +pretrainS.toFixed(1),
    frozenCacheS: +cacheS.toFixed(1),
    valAccuracy: +acc(split.val).toFixed(4),
    testAccuracy: +acc(split.test).toFixed(4),
    stepMs50x64: +stepMs.toFixed(1),
    predict10PhisOnValMs: +predictMs.toFixed(1),
  }),
);
