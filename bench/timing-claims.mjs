#!/usr/bin/env node
// The latency claims the tests used to assert on the wall clock (issue 21, item 8), measured
// here instead (after `npm run build`): how soon a timed-out webhook evaluator, an evaluator
// stuck in a worker thread, a woken long poll and `metricopt train --job` after SIGTERM end.
// Prints a markdown table (median and max of --repeats runs, default 5) for bench/RESULTS.md.
//   node bench/timing-claims.mjs [--repeats 5]
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { loadEvaluatorModuleInWorker } from '../dist/shared/adapters/evaluator-module.worker-thread.js';
import { createWebhookEvaluator } from '../dist/shared/adapters/evaluator.webhook.js';
import { LocalQueue } from '../dist/shared/adapters/queue.local.js';
import { evaluateChecked } from '../dist/shared/metrics/checked-evaluator.js';

const root = join(import.meta.dirname, '..');
const at = process.argv.indexOf('--repeats');
const repeats = at > 0 ? Number(process.argv[at + 1]) : 5;
const input = { scores: Float32Array.from([0.9, 0.2, 0.7]), labels: Int32Array.from([1, 0, 0]), classes: 2 };
const dir = await mkdtemp(join(tmpdir(), 'mo-timing-'));

async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function webhookTimeout() {
  const server = createServer(() => {}); // never answers
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const evaluator = createWebhookEvaluator({
    name: 'slow',
    url,
    direction: 'minimize',
    secret: 'x'.repeat(32),
    timeoutMs: 100,
  });
  const ms = await timed(async () => {
    const r = await evaluateChecked(evaluator, input);
    if (r.ok || r.error.code !== 'EVALUATOR_TIMEOUT') throw new Error(`webhook: ${JSON.stringify(r)}`);
  });
  server.closeAllConnections();
  server.close();
  return ms;
}

async function stuckWorker() {
  const path = join(dir, 'stuck.mjs');
  await writeFile(path, "export default { name: 'stuck', direction: 'minimize', evaluate: () => { for (;;) {} } };");
  const loaded = await loadEvaluatorModuleInWorker(path);
  if (!loaded.ok) throw loaded.error;
  return timed(async () => {
    const r = await evaluateChecked(loaded.value, input, 300);
    if (r.ok || r.error.code !== 'EVALUATOR_TIMEOUT') throw new Error(`worker: ${JSON.stringify(r)}`);
  });
}

async function longPollWake() {
  const q = new LocalQueue(await mkdtemp(join(dir, 'q-')));
  const t0 = performance.now();
  const pending = q.receive({ max: 1, waitMs: 5000 });
  setTimeout(() => void q.send(['late']), 100);
  const got = await pending;
  q.close();
  if (got.length !== 1) throw new Error('long poll: nothing received');
  return performance.now() - t0 - 100; // after the send
}

/** `metricopt train --job` (the tests' tiny job with 48 tasks), SIGTERM after its 3rd journaled state. */
async function trainSigterm(i) {
  const rows = gunzipSync(readFileSync(join(root, 'data/a9a.train.libsvm.gz')))
    .toString()
    .split('\n');
  const file = join(dir, 'a9a-small.libsvm');
  await writeFile(file, rows.slice(0, 400).join('\n'));
  const id = `kill-${i}`;
  const job = join(dir, `${id}.json`);
  const store = join(dir, `store-${i}`);
  await writeFile(
    job,
    JSON.stringify({
      format: 'metricopt.job',
      schemaVersion: 1,
      id,
      dataset: { source: file, features: 123 },
      metric: { builtin: 'mcr' },
      recipe: 'tuned',
      seed: 3,
      overrides: {
        pretrain: { epochs: 1 },
        metaTrain: { ensemble: 1, trajectories: { tasks: 48, steps: 6, queries: 3 }, train: { epochs: 2 } },
      },
      output: { valueFunctionId: 'tiny-vf' },
      checkpoint: { chunkTasks: 2, queryBatch: 3 },
    }),
  );
  const states = () => {
    try {
      return readdirSync(join(store, 'jobs', id, 'state')).length;
    } catch {
      return 0;
    }
  };
  const child = spawn(process.execPath, [join(root, 'bin/metricopt.mjs'), 'train', '--job', job, '--store', store], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b) => (out += String(b)));
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  while (states() < 3) await new Promise((r) => setTimeout(r, 3));
  const t0 = performance.now();
  child.kill('SIGTERM');
  const code = await exited;
  const ms = performance.now() - t0;
  if (code !== 0 || !out.includes('interrupted')) throw new Error(`train: exit ${code}, ${out.slice(-300)}`);
  return ms;
}

const claims = [
  ['webhook evaluator, timeoutMs 100: call to EVALUATOR_TIMEOUT', webhookTimeout],
  ['worker-thread evaluator stuck in a loop, timeout 300 ms: call to EVALUATOR_TIMEOUT', stuckWorker],
  ['LocalQueue long poll (waitMs 5000): send to receive', longPollWake],
  ['`metricopt train --job` (48 tasks): SIGTERM to exit 0, interrupted', trainSigterm],
];
console.log(`| claim | median (ms) | max (ms) | runs |\n| --- | ---: | ---: | ---: |`);
for (const [name, fn] of claims) {
  const ms = [];
  for (let i = 0; i < repeats; i++) ms.push(await fn(i));
  ms.sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)];
  console.log(`| ${name} | ${median.toFixed(0)} | ${ms.at(-1).toFixed(0)} | ${ms.length} |`);
}
await rm(dir, { recursive: true, force: true });
