#!/usr/bin/env node
// Chooses the tuned recipe's meta-test defaults (and tasks x K) on VALIDATION data only: each
// replicate splits the data, pre-trains, meta-trains once per (metric, tasks x K), then runs
// meta-test for every candidate setting, scored on rows held out of the training split
// (`--report-split train-holdout`: every 7th training row). The test split is never read.
// Usage: node bench/tune-defaults.mjs [--datasets a9a,ijcnn1] [--metrics mcr,f1] [--replicates 3]
//        [--seeds 2] [--seed 7] [--out bench/out/tune.jsonl]   (npm run build first)
//        node bench/tune-defaults.mjs --summarise a.jsonl,b.jsonl   (the markdown summary of runs)
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    datasets: { type: 'string', default: 'a9a,ijcnn1' },
    metrics: { type: 'string', default: 'mcr,f1' },
    replicates: { type: 'string', default: '3' },
    seeds: { type: 'string', default: '2' },
    seed: { type: 'string', default: '7' },
    'task-configs': { type: 'string', default: '1000x5,2500x3' },
    out: { type: 'string', default: 'bench/out/tune.jsonl' },
    summarise: { type: 'string' },
  },
});
if (values.summarise) {
  summarise(values.summarise.split(','));
  process.exit(0);
}

/**
 * Per setting: metricopt minus the best loss-only baseline of each (dataset, metric, replicate)
 * cell, in normalised units (lower is better), averaged over cells, with the worst cell; and
 * the same against threshold. The default is the setting with the best mean.
 */
function summarise(files) {
  const rows = files.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l)),
  );
  const norm = (r, v) => (r.direction === 'minimize' ? v : -v);
  const by = new Map();
  for (const r of rows) {
    const key = `tasks ${r.tasks} K ${r.K}, lossWeight ${r.lossWeight}, lossSampler ${r.lossSampler}, trust ${r.trustRadius}`;
    const h = r.holdout;
    const lossBest = Math.min(
      ...['ce_finetune', 'ce_finetune_natural', 'ce_finetune_dense_eval'].map((m) => norm(r, h[m])),
    );
    const e = by.get(key) ?? { vsLoss: [], vsThreshold: [], vsBestObs: [], cells: new Set() };
    e.vsLoss.push(norm(r, h.metricopt) - lossBest);
    e.vsThreshold.push(norm(r, h.metricopt) - norm(r, h.threshold));
    e.vsBestObs.push(norm(r, h.metricopt) - norm(r, h.best_observed));
    e.cells.add(`${r.dataset}-${r.metric}`);
    by.set(key, e);
  }
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const f = (v) => `${v >= 0 ? '+' : ''}${v.toFixed(4)}`;
  const table = [...by.entries()].sort((a, b) => mean(a[1].vsLoss) - mean(b[1].vsLoss));
  console.log(
    '| setting | cells | n | vs best loss-only: mean | worst | vs threshold: mean | vs best_observed: mean |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const [k, e] of table) {
    console.log(
      `| ${k} | ${[...e.cells].join(' ')} | ${e.vsLoss.length} | ${f(mean(e.vsLoss))} | ${f(Math.max(...e.vsLoss))} | ${f(mean(e.vsThreshold))} | ${f(mean(e.vsBestObs))} |`,
    );
  }
}
const dist = (p) => import(new URL(`../dist/${p}`, import.meta.url).href);
const { loadDataset } = await dist('shared/adapters/dataset.fs.js');
const { selectBackend } = await dist('shared/adapters/compute-backend.js');
const { InProcessMetricOracle } = await dist('shared/adapters/metric-oracle.in-process.js');
const { splitRows } = await dist('shared/data/split.js');
const { BalancedSampler, NaturalSampler, classPrior } = await dist('shared/data/sampler.js');
const { generateTrajectories, phiAt } = await dist('shared/method/trajectory.js');
const { CompiledValueFunction } = await dist('shared/method/value-function-f32.js');
const { builtinEvaluator } = await dist('shared/metrics/registry.js');
const { pretrainAdaptedModel } = await dist('shared/use-cases/training/pretrain.js');
const { observeMetric } = await dist('shared/use-cases/training/observe-metric.js');
const { fitValueFunction } = await dist('shared/use-cases/training/meta-train.js');
const { metaTestSeed } = await dist('shared/use-cases/training/meta-test.js');
const { bestObservation, replicateRows } = await dist('shared/use-cases/training/run-demo.js');
const { tunedRecipe, reseed, replicateSeed } = await dist('shared/use-cases/training/recipes.js');

const datasetPath = {
  a9a: 'a9a',
  ijcnn1: '../shared/data/ijcnn1.train.libsvm.gz',
  w8a: '../shared/data/w8a.train.libsvm.gz',
  phishing: '../shared/data/phishing.libsvm.gz',
  mushrooms: '../shared/data/mushrooms.libsvm.gz',
};
const grid = [];
for (const lossWeight of [0, 1, 3])
  for (const lossSampler of ['natural', 'balanced'])
    for (const trustRadius of [2, 4]) grid.push({ lossWeight, lossSampler, trustRadius });
const quiet = { start() {}, tick() {}, end() {} };
const backend = (await selectBackend('auto')).name;
mkdirSync(dirname(values.out), { recursive: true });
writeFileSync(values.out, '');
const t00 = performance.now();

for (const dsName of values.datasets.split(',')) {
  const loaded = await loadDataset(datasetPath[dsName] ?? dsName, {});
  if (!loaded.ok) throw loaded.error;
  const ds = loaded.value;
  for (let r = 0; r < Number(values.replicates); r++) {
    const base = reseed(tunedRecipe(), replicateSeed(Number(values.seed), r));
    const { train, observe, select, report } = replicateRows(splitRows(ds.rows, base.seed), {
      selectionSplit: 'separate',
      reportSplit: 'train-holdout',
    });
    const labelsOf = (rows) => Int32Array.from(rows, (x) => ds.labels[x]);
    const sampler = new BalancedSampler(train, ds.labels, ds.classes);
    const model = await pretrainAdaptedModel(ds, train, base, quiet);
    for (const tc of values['task-configs'].split(',')) {
      const [tasks, K] = tc.split('x').map(Number);
      const cfg = structuredClone(base);
      cfg.metaTrain.trajectories = { ...cfg.metaTrain.trajectories, tasks, queries: K };
      const traj = generateTrajectories(model, sampler, cfg.metaTrain.trajectories, quiet);
      for (const metric of values.metrics.split(',')) {
        const found = builtinEvaluator(metric);
        if (!found.ok) throw found.error;
        const evaluator = found.value;
        const oracle = new InProcessMetricOracle(evaluator);
        await oracle.registerSplit('val', { labels: labelsOf(observe), classes: model.classes });
        const requests = traj.querySteps.flatMap((steps, taskId) =>
          steps.map((step) => ({ taskId, step, phi: phiAt(traj, taskId, step) })),
        );
        const outcome = await observeMetric(model, oracle, requests, observe, 'tune', 'val', traj.n, quiet);
        const trained = fitValueFunction(
          { ...cfg.metaTrain, checkpointId: 'tune', jobId: 'tune' },
          { trajectories: traj, outcome },
          { model, oracle, progress: quiet, dataset: ds.name },
        );
        const vf = new CompiledValueFunction({ ...trained.checkpoint, version: 1 });
        const deps = {
          model,
          sampler,
          naturalSampler: new NaturalSampler(train),
          trainPrior: classPrior(train, ds.labels, ds.classes),
          bestObserved: bestObservation(trained),
          valRows: select,
          testRows: report,
          valLabels: labelsOf(select),
          testLabels: labelsOf(report),
          oracle,
          evaluator,
          valueFunction: vf,
        };
        for (const g of grid) {
          const mt = { ...cfg.metaTest, ...g };
          const runs = [];
          for (let s = 0; s < Number(values.seeds); s++) runs.push(await metaTestSeed(mt, deps, cfg.seed + s, 'tune'));
          const methods = Object.fromEntries(
            Object.keys(runs[0].runs).map((m) => [m, runs.reduce((a, x) => a + x.runs[m].test, 0) / runs.length]),
          );
          const row = {
            dataset: dsName,
            metric,
            direction: evaluator.direction,
            replicate: r,
            tasks,
            K,
            spearman: trained.health.spearman,
            ...g,
            holdout: methods,
          };
          appendFileSync(values.out, `${JSON.stringify(row)}\n`);
        }
        console.error(
          `${dsName} ${metric} r${r} ${tc}: Spearman ${trained.health.spearman?.toFixed(3)} (${((performance.now() - t00) / 1000).toFixed(0)} s)`,
        );
      }
    }
    model.dispose();
  }
}
console.error(`backend ${backend}; total ${((performance.now() - t00) / 1000).toFixed(0)} s; rows in ${values.out}`);
