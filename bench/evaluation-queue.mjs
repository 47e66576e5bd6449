#!/usr/bin/env node
// Evaluation-queue throughput: evaluations per second through the durable local queue with 1, 2
// and 4 evaluator worker processes (built-in MCR, A9A validation split), next to calling the
// evaluator directly. Needs `npm run build` (imports dist/).
//
//   node bench/evaluation-queue.mjs [--queries 400] [--workers 1,2,4] [--repeats 3] [--slow-ms 20]
//
// --slow-ms adds a run with an evaluator that waits that long per call (a remote or
// proprietary metric): the case the queue is for, where worker processes add up.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const dist = new URL('../dist/', import.meta.url);
const load = (path) => import(new URL(path, dist).href);
const { startLocalQueueOracle } = await load('cli/local-queue-oracle.js');
const { loadDataset } = await load('shared/adapters/dataset.fs.js');
const { splitRows } = await load('shared/data/split.js');
const { mcr } = await load('shared/metrics/builtins.js');
const { evaluateChecked } = await load('shared/metrics/checked-evaluator.js');
const { Rng } = await load('shared/util/random.js');

const { values: args } = parseArgs({
  options: {
    queries: { type: 'string', default: '400' },
    workers: { type: 'string', default: '1,2,4' },
    repeats: { type: 'string', default: '3' },
    'slow-ms': { type: 'string', default: '20' },
  },
});
const M = Number(args.queries);
const workerCounts = args.workers.split(',').map(Number);
const repeats = Number(args.repeats);

const loaded = await loadDataset('a9a');
if (!loaded.ok) throw loaded.error;
const ds = loaded.value;
const split = splitRows(ds.rows, 1);
const labels = Int32Array.from(split.val, (r) => ds.labels[r]);
const n = labels.length;
const rng = new Rng(7);
const makeQueries = (jobId, count) =>
  Array.from({ length: count }, (_, i) => ({
    jobId,
    taskId: i,
    step: 0,
    split: 'val',
    scores: Float32Array.from({ length: n }, () => rng.next()),
  }));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Direct: the checked evaluator in this process, same inputs.
const direct = [];
{
  const qs = makeQueries('direct', M);
  for (const q of qs.slice(0, 50)) await evaluateChecked(mcr, { scores: q.scores, labels, classes: 2 });
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (const q of qs) await evaluateChecked(mcr, { scores: q.scores, labels, classes: 2 });
    direct.push((performance.now() - t0) / M);
  }
}
const directMs = median(direct);

// Serial breakdown in this one process (no worker processes, no contention between them):
// where the queue's overhead goes, phase by phase.
const { LocalQueue } = await load('shared/adapters/queue.local.js');
const { FsObjectStore } = await load('shared/adapters/object-store.fs.js');
const { QueuedMetricOracle } = await load('shared/adapters/metric-oracle.queued.js');
const { evaluateRequest } = await load('shared/use-cases/evaluation/evaluate-request.js');
const { createEvaluatorRegistry } = await load('shared/metrics/evaluator-registry.js');
const breakdown = { send: [], receive: [], worker: [], ack: [] };
for (let r = 0; r < repeats; r++) {
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-bench-serial-'));
  const queue = new LocalQueue(join(dir, 'queue'));
  const store = new FsObjectStore(join(dir, 'store'));
  // deadlineMs: 1 — only the sending half of evaluate() is timed here.
  const sender = new QueuedMetricOracle({
    queue,
    store,
    metric: { name: 'mcr', direction: 'minimize' },
    deadlineMs: 1,
  });
  await sender.registerSplit('val', { labels, classes: 2 });
  const qs = makeQueries(`serial-${r}`, M);
  let t0 = performance.now();
  await sender.evaluate(qs);
  breakdown.send.push((performance.now() - t0) / M);
  const registry = await createEvaluatorRegistry([]);
  const deps = { store, registry: registry.value, workerId: 'bench', maxReceiveCount: 3, evaluatorTimeoutMs: 60_000 };
  let tr = 0;
  let tw = 0;
  let ta = 0;
  for (let i = 0; i < M; i++) {
    t0 = performance.now();
    const [m] = await queue.receive({ max: 1 });
    const t1 = performance.now();
    await evaluateRequest(deps, { body: m.body, receiveCount: m.receiveCount });
    const t2 = performance.now();
    await queue.ack(m.receipt);
    const t3 = performance.now();
    tr += t1 - t0;
    tw += t2 - t1;
    ta += t3 - t2;
  }
  breakdown.receive.push(tr / M);
  breakdown.worker.push(tw / M);
  breakdown.ack.push(ta / M);
  queue.close();
  await rm(dir, { recursive: true, force: true });
}

async function throughput(workers, metric, evaluatorModule, count) {
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-bench-queue-'));
  const oracle = await startLocalQueueOracle({ metric, workers, dir, ...(evaluatorModule ? { evaluatorModule } : {}) });
  try {
    await oracle.registerSplit('val', { labels, classes: 2 });
    // Warm-up: wait until every worker process is up and answering.
    await oracle.evaluate(makeQueries(`warm-${workers}`, workers * 4));
    const perEval = [];
    for (let r = 0; r < repeats; r++) {
      const qs = makeQueries(`run-${workers}-${r}`, count);
      const t0 = performance.now();
      const results = await oracle.evaluate(qs);
      const wall = performance.now() - t0;
      const failed = results.filter((x) => !x.ok).length;
      if (failed) throw new Error(`${failed} evaluations failed: ${results.find((x) => !x.ok).error.message}`);
      perEval.push(wall / count);
    }
    return median(perEval);
  } finally {
    await oracle.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const rows = [];
for (const workers of workerCounts) {
  const ms = await throughput(workers, 'mcr', undefined, M);
  rows.push({ workers, msPerEval: ms, evalsPerS: 1000 / ms, overheadMs: ms - directMs });
}

const slowMs = Number(args['slow-ms']);
const slowRows = [];
if (slowMs > 0) {
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-bench-slow-'));
  const modulePath = join(dir, 'remote-mcr.mjs');
  await writeFile(
    modulePath,
    `export default {
  name: 'remote-mcr',
  direction: 'minimize',
  async evaluate({ scores, labels }) {
    await new Promise((r) => setTimeout(r, ${slowMs}));
    let wrong = 0;
    for (let i = 0; i < labels.length; i++) if ((scores[i] >= 0.5 ? 1 : 0) !== labels[i]) wrong++;
    return wrong / labels.length;
  },
};
`,
  );
  const count = Math.min(M, 200);
  for (const workers of workerCounts) {
    const ms = await throughput(workers, 'remote-mcr', modulePath, count);
    slowRows.push({ workers, msPerEval: ms, evalsPerS: 1000 / ms });
  }
  await rm(dir, { recursive: true, force: true });
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`A9A validation split: ${n} rows; ${M} queries per run, median of ${repeats} runs`);
console.log(`machine: ${availableParallelism()} cores (${cpu}), node ${process.version}`);
console.log('');
console.log('| path | evaluations/s | ms per evaluation | queue overhead per evaluation |');
console.log('|---|---|---|---|');
console.log(
  `| direct evaluateChecked(mcr), in process | ${(1000 / directMs).toFixed(0)} | ${directMs.toFixed(3)} | - |`,
);
for (const r of rows) {
  console.log(
    `| local queue, ${r.workers} worker process${r.workers > 1 ? 'es' : ''} | ${r.evalsPerS.toFixed(0)} | ${r.msPerEval.toFixed(3)} | ${r.overheadMs.toFixed(3)} ms |`,
  );
}
console.log('');
const b = Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, median(v)]));
console.log('Serial breakdown, one process (ms per evaluation):');
console.log('');
console.log(
  '| trainer: write predictions + send | worker: receive | worker: evaluate-request (claim, read, MCR, result, unclaim) | worker: ack | total | of which MCR |',
);
console.log('|---|---|---|---|---|---|');
const total = b.send + b.receive + b.worker + b.ack;
console.log(
  `| ${b.send.toFixed(3)} | ${b.receive.toFixed(3)} | ${b.worker.toFixed(3)} | ${b.ack.toFixed(3)} | ${total.toFixed(3)} | ${directMs.toFixed(3)} |`,
);
if (slowRows.length > 0) {
  console.log('');
  console.log(
    `Evaluator that waits ${slowMs} ms per call (a remote metric; ideal: ${(1000 / slowMs).toFixed(0)} evaluations/s per worker):`,
  );
  console.log('');
  console.log('| workers | evaluations/s | ms per evaluation |');
  console.log('|---|---|---|');
  for (const r of slowRows) console.log(`| ${r.workers} | ${r.evalsPerS.toFixed(0)} | ${r.msPerEval.toFixed(2)} |`);
}
