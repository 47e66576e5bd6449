#!/usr/bin/env node
// Chooses the metric-learning baseline's step size and temperature (metaTest.metricLoss,
// METRIC_LOSS_DEFAULTS) on VALIDATION rows only: the pre-trained Fashion-MNIST ConvNet (FiLM
// d = 128) from a demo's run cache (no pre-training here), phi fine-tuned from 0 with the
// supervised contrastive loss on class-balanced batches of 64 (Adam, the loss-only optimiser),
// recall@1 of the whole validation split (5,830 rows, seed 1) after T steps, mean over seeds;
// cross-entropy fine-tuning at the recipe's step size (Adam 0.05) on the same batches beside it.
// Training rows: a seeded class-balanced subset (--train-per-class) to keep the frozen-layer
// cache small. The test split is not read.
// Usage: npm run build && nice -n 10 node bench/metric-loss-select.mjs --cache /tmp/i3-smoke/cache
//          [--steps 10,50] [--seeds 2] [--lr 0.01,0.03,0.1,0.3] [--tau 0.05,0.1,0.2,0.5] [--train-per-class 1000]
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { selectBackend } from '../dist/shared/adapters/compute-backend.js';
import { loadDataset } from '../dist/shared/adapters/dataset.fs.js';
import { FsObjectStore } from '../dist/shared/adapters/object-store.fs.js';
import { BalancedSampler } from '../dist/shared/data/sampler.js';
import { stratifiedSplit } from '../dist/shared/data/image-set.js';
import { BatchedOptimizer } from '../dist/shared/method/optimizers.js';
import { recallAtK } from '../dist/shared/metrics/retrieval.js';
import { supervisedContrastiveLoss } from '../dist/shared/models/metric-learning-loss.js';
import { buildAdaptedModel } from '../dist/shared/models/model-spec.js';
import { loadPretrained } from '../dist/shared/use-cases/training/run-cache.js';
import { Rng } from '../dist/shared/util/random.js';

const { values } = parseArgs({
  options: {
    cache: { type: 'string' },
    steps: { type: 'string', default: '10,50' },
    seeds: { type: 'string', default: '2' },
    lr: { type: 'string', default: '0.01,0.03,0.1,0.3' },
    tau: { type: 'string', default: '0.05,0.1,0.2,0.5' },
    'train-per-class': { type: 'string', default: '1000' },
  },
});
if (!values.cache) throw new Error('--cache <run cache folder of a fashion-mnist demo> is required');
const list = (s) => s.split(',').map(Number);
const stepsList = list(values.steps);
const T = Math.max(...stepsList);
const seeds = Number(values.seeds);
const backend = (await selectBackend('wasm')).name;
const full = (await loadDataset('fashion-mnist')).value;
if (!full) throw new Error('run npx metricopt data fetch fashion-mnist first');
const key = readdirSync(join(values.cache, 'pretrained'))[0]?.replace(/\.json$/, '');
const spec = await loadPretrained({ store: new FsObjectStore(values.cache), backend }, key);
if (!spec) throw new Error(`no pre-trained backbone in ${values.cache}`);

// The demo's split (seed 1, 45:5:10 per class); a class-balanced subset of its training rows.
const split = stratifiedSplit(full.labels, full.classes, 1, [45, 5, 10]);
const perClass = Number(values['train-per-class']);
const pick = new Rng(99);
const byClass = Array.from({ length: full.classes }, () => []);
for (const r of pick.shuffle(Int32Array.from(split.train))) {
  const b = byClass[full.labels[r]];
  if (b.length < perClass) b.push(r);
}
const keep = Int32Array.from([...byClass.flat(), ...split.val]);
const ds = subset(full, keep);
const trainRows = Int32Array.from({ length: keep.length - split.val.length }, (_, i) => i);
const valRows = Int32Array.from({ length: split.val.length }, (_, i) => trainRows.length + i);
let t0 = performance.now();
const model = buildAdaptedModel(spec, ds);
const cacheS = (performance.now() - t0) / 1000;
const recall = recallAtK(1);
const valLabels = Int32Array.from(valRows, (r) => ds.labels[r]);
const score = (phi) =>
  recall.evaluate({
    scores: new Float32Array(valRows.length * ds.classes),
    labels: valLabels,
    classes: ds.classes,
    embeddings: { dim: model.embedDim, values: model.embed(phi, 1, valRows) },
  });
const sampler = new BalancedSampler(trainRows, ds.labels, ds.classes);
const batchesOf = (seed) => {
  const rng = new Rng(1000 + seed);
  return Array.from({ length: T }, () => sampler.sample(rng, 64));
};
const B = Array.from({ length: seeds }, (_, s) => batchesOf(s));

/** Recall@1 on validation after each of `stepsList` steps, for one loss and step size, per seed. */
function run(step, lr) {
  return B.map((batches) => {
    const phi = new Float32Array(model.d);
    const opt = new BatchedOptimizer('adam', lr, model.d);
    const out = {};
    batches.forEach((rows, t) => {
      opt.step(phi, step(phi, rows));
      if (stepsList.includes(t + 1)) out[t + 1] = score(phi);
    });
    return out;
  });
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const row = (name, perSeed) =>
  `| ${name} | ${stepsList.map((s) => `${mean(perSeed.map((o) => o[s])).toFixed(4)} (${perSeed.map((o) => o[s].toFixed(4)).join(', ')})`).join(' | ')} |`;

t0 = performance.now();
const lines = [
  `pre-trained (phi = 0): validation recall@1 ${score(new Float32Array(model.d)).toFixed(4)}`,
  '',
  `| loss, step size | ${stepsList.map((s) => `recall@1 after ${s} steps (per seed)`).join(' | ')} |`,
  `|---|${stepsList.map(() => '---|').join('')}`,
];
lines.push(
  row(
    'cross-entropy, Adam 0.05',
    run((phi, rows) => model.lossAndGrad(phi, 1, rows, rows.length).grad, 0.05),
  ),
);
const grid = [];
for (const tau of list(values.tau)) {
  const loss = supervisedContrastiveLoss(tau);
  for (const lr of list(values.lr)) {
    const perSeed = run((phi, rows) => model.embeddingLossAndGrad(phi, 1, rows, rows.length, loss).grad, lr);
    grid.push({ tau, lr, perSeed });
    lines.push(row(`SupCon tau ${tau}, Adam ${lr}`, perSeed));
    process.stderr.write(`${lines[lines.length - 1]}\n`);
  }
}
for (const s of stepsList) {
  const best = grid.reduce((a, b) => (mean(b.perSeed.map((o) => o[s])) > mean(a.perSeed.map((o) => o[s])) ? b : a));
  lines.push('', `best after ${s} steps: tau ${best.tau}, Adam ${best.lr}`);
}
lines.push(
  '',
  `${backend}; ${trainRows.length} training rows (${perClass} per class), ${valRows.length} validation rows; frozen-layer cache ${cacheS.toFixed(1)} s, grid ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
console.log(lines.join('\n'));
model.dispose();

/** The rows `keep` of a CSR data set, in that order. */
function subset(d, keep) {
  const indptr = new Int32Array(keep.length + 1);
  let nnz = 0;
  keep.forEach((r, i) => {
    nnz += d.indptr[r + 1] - d.indptr[r];
    indptr[i + 1] = nnz;
  });
  const indices = new Int32Array(nnz);
  const vals = new Float32Array(nnz);
  keep.forEach((r, i) => {
    indices.set(d.indices.subarray(d.indptr[r], d.indptr[r + 1]), indptr[i]);
    vals.set(d.values.subarray(d.indptr[r], d.indptr[r + 1]), indptr[i]);
  });
  return {
    name: `${d.name}-subset`,
    rows: keep.length,
    features: d.features,
    indptr,
    indices,
    values: vals,
    labels: Int32Array.from(keep, (r) => d.labels[r]),
    classes: d.classes,
  };
}
