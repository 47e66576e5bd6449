#!/usr/bin/env node
// Meta-test step cost: a loss-only fine-tuning step (loss gradient on a mini-batch + Adam) next
// to a MetricOpt step, both recipes' kinds (Guided ES: loss gradient + QR + 2P value-function
// evaluations; value-function descent: value-function gradient only), interleaved in rounds so
// machine noise hits all alike. Median and p90 per step. Usage: npm run build && node bench/step-cost.mjs [--steps 400] [--ensemble 3]
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../dist/shared/adapters/compute-backend.js';
import { loadDataset } from '../dist/shared/adapters/dataset.fs.js';
import { toDense } from '../dist/shared/data/dataset.js';
import { BalancedSampler } from '../dist/shared/data/sampler.js';
import { splitRows } from '../dist/shared/data/split.js';
import { guidedEsDirection } from '../dist/shared/method/guided-es.js';
import { BatchedOptimizer, projectToBall } from '../dist/shared/method/optimizers.js';
import { CompiledValueFunction } from '../dist/shared/method/value-function-f32.js';
import { ValueFunctionNet } from '../dist/shared/method/value-function.js';
import { FrozenMlpModel } from '../dist/shared/models/frozen-mlp.js';
import { defaultMlpConfig, pretrainMlp } from '../dist/shared/models/mlp.js';
import { silentProgress } from '../dist/shared/ports/progress.port.js';
import { Rng } from '../dist/shared/util/random.js';

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '400' }, ensemble: { type: 'string', default: '3' } },
});
const steps = Number(values.steps);
const backend = (await selectBackend('auto')).name;
const ds = (await loadDataset('a9a')).value;
const split = splitRows(ds.rows, 1);
const x = tf.tensor2d(toDense(ds), [ds.rows, ds.features]);
const frozen = await pretrainMlp(
  ds,
  split.train,
  x,
  defaultMlpConfig,
  { epochs: 1, batchSize: 256, learningRate: 1e-3, seed: 1 },
  silentProgress,
);
x.dispose();
const model = new FrozenMlpModel(frozen, ds);
const d = model.d;
const members = Array.from({ length: Number(values.ensemble) }, (_, i) => {
  const net = new ValueFunctionNet({ d, hidden: [64, 32, 32, 16], batchNorm: false }, i + 1);
  const layers = net.toLayers();
  net.dispose();
  return { layers };
});
const vf = new CompiledValueFunction({
  format: 'metricopt.value-function',
  schemaVersion: 1,
  id: 'bench',
  version: 1,
  createdAt: '',
  libraryVersion: '',
  d,
  metric: { name: 'mcr', direction: 'minimize' },
  recipe: 'tuned',
  dataset: 'a9a',
  adapter: { kind: 'input-bias', d },
  inputNormalisation: { mean: Array(d).fill(0), std: Array(d).fill(1) },
  targetNormalisation: { mean: 0.2, std: 0.03 },
  hiddenActivation: 'relu',
  embeddingLayer: 3,
  members,
  training: { tasks: 0, heldOutTasks: 0, heldOutMae: null, constantMae: null, spearman: null },
});
const sampler = new BalancedSampler(split.train, ds.labels, ds.classes);
const rng = new Rng(1);
const B = 64;
const rows = new Int32Array(B);
const kinds = {
  'loss-only (Adam on the loss)': (() => {
    const phi = new Float32Array(d);
    const opt = new BatchedOptimizer('adam', 0.05, d);
    return () => {
      const { grad } = model.lossAndGrad(phi, 1, rows, B);
      opt.step(phi, grad);
    };
  })(),
  'metricopt, Guided ES (paper recipe)': (() => {
    const phi = new Float32Array(d);
    const opt = new BatchedOptimizer('adam', 0.05, d);
    const grads = [];
    const es = rng.fork(1);
    return () => {
      const { grad } = model.lossAndGrad(phi, 1, rows, B);
      grads.push(grad.slice());
      if (grads.length > 3) grads.shift();
      opt.step(
        phi,
        guidedEsDirection((p) => vf.value(p), phi, grads, { P: 3, sigma2: 0.01 }, es),
      );
    };
  })(),
  'metricopt, value-function descent (tuned recipe)': (() => {
    const phi = new Float32Array(d);
    const start = new Float32Array(d);
    const g = new Float32Array(d);
    const opt = new BatchedOptimizer('adam', 0.1, d);
    return () => {
      vf.valueAndGradient(phi, g);
      opt.step(phi, g);
      projectToBall(phi, start, 2);
    };
  })(),
};
const times = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
for (let round = 0; round < steps + 20; round++) {
  sampler.sampleInto(rng, rows);
  for (const [name, step] of Object.entries(kinds)) {
    const t0 = performance.now();
    step();
    if (round >= 20) times[name].push(performance.now() - t0);
  }
}
const q = (a, p) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p * a.length))];
const base = q(times['loss-only (Adam on the loss)'], 0.5);
console.log(
  `backend ${backend}, A9A MLP 123-100-30-10-1, d = ${d}, batch ${B}, ensemble of ${values.ensemble}, ${steps} interleaved steps each`,
);
console.log('| step | median ms | p90 ms | median / loss-only |');
console.log('|---|---|---|---|');
for (const [name, t] of Object.entries(times))
  console.log(`| ${name} | ${q(t, 0.5).toFixed(3)} | ${q(t, 0.9).toFixed(3)} | ${(q(t, 0.5) / base).toFixed(2)}x |`);
model.dispose();
