#!/usr/bin/env node
// Headroom of today's (loss-only metric) matrix cells, without re-running them: for each data
// set and replicate, the same pre-trained model as `metricopt demo --replicates R
// --pretrain-epochs E` builds (same split and seeds, the tuned recipe), and on its test rows the
// best single global threshold for each metric (an optimistic oracle, shared/report/headroom.ts).
// Usage: npm run build && node bench/headroom.mjs [--replicates 5] [--pretrain-epochs 3]
//          [--datasets a9a,w8a,ijcnn1,phishing,mushrooms] [--metrics mcr,f1,aucpr,balanced-error]
import { parseArgs } from 'node:util';

const dist = (p) => import(new URL(`../dist/${p}`, import.meta.url).href);
const { loadDataset } = await dist('shared/adapters/dataset.fs.js');
const { selectBackend } = await dist('shared/adapters/compute-backend.js');
const { splitRows } = await dist('shared/data/split.js');
const { builtinEvaluator } = await dist('shared/metrics/registry.js');
const { scoredRows } = await dist('shared/metrics/context-columns.js');
const { headroom } = await dist('shared/report/headroom.js');
const { recipe, reseed, replicateSeed } = await dist('shared/use-cases/training/recipes.js');
const { replicateRows } = await dist('shared/use-cases/training/run-rows.js');
const { pretrainAdaptedModel } = await dist('shared/use-cases/training/pretrain.js');
const { silentProgress } = await dist('shared/ports/progress.port.js');

const { values } = parseArgs({
  options: {
    replicates: { type: 'string', default: '5' },
    'pretrain-epochs': { type: 'string', default: '3' },
    datasets: { type: 'string', default: 'a9a,w8a,ijcnn1,phishing,mushrooms' },
    metrics: { type: 'string', default: 'mcr,f1,aucpr,balanced-error' },
  },
});
const files = {
  a9a: 'a9a',
  w8a: '../shared/data/w8a.train.libsvm.gz',
  ijcnn1: '../shared/data/ijcnn1.train.libsvm.gz',
  phishing: '../shared/data/phishing.libsvm.gz',
  mushrooms: '../shared/data/mushrooms.libsvm.gz',
};
await selectBackend('wasm');
const metrics = values.metrics.split(',').map((m) => {
  const e = builtinEvaluator(m);
  if (!e.ok) throw e.error;
  return e.value;
});
const f = (v) => (v === null ? 'n/a' : v.toFixed(4));
console.log('| cell | best global threshold (mean over replicates) | per replicate |');
console.log('|---|---|---|');
for (const name of values.datasets.split(',')) {
  const loaded = await loadDataset(files[name]);
  if (!loaded.ok) throw loaded.error;
  const ds = loaded.value;
  const per = metrics.map(() => []);
  for (let r = 0; r < Number(values.replicates); r++) {
    const cfg = reseed(recipe('tuned', 1), replicateSeed(1, r));
    cfg.pretrain = { ...cfg.pretrain, epochs: Number(values['pretrain-epochs']) };
    const rows = replicateRows(splitRows(ds.rows, cfg.seed), cfg);
    const model = await pretrainAdaptedModel(ds, rows.train, cfg, silentProgress);
    const scores = model.predict(new Float32Array(model.d), 1, rows.report);
    for (const [i, e] of metrics.entries()) {
      per[i].push((await headroom(e, scores, scoredRows(ds, rows.report))).globalThreshold);
    }
    model.dispose();
  }
  for (const [i, e] of metrics.entries()) {
    const xs = per[i].filter((v) => v !== null);
    const mean = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
    console.log(`| ${name} ${e.name} | ${f(mean)} | ${per[i].map(f).join(', ')} |`);
  }
}
