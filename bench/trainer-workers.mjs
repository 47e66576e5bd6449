#!/usr/bin/env node
// Meta-training tasks per second on A9A with 1 and 2 trainer workers on the durable local queue
// (issue 11): a fan-out job of --tasks trajectories (50 steps, 5 metric queries each) in chunks
// of --chunk, run by `metricopt train --queue --workers N`. The stage rate is tasks over the
// time from the fan-out to the last chunk committed; the whole run adds pre-training and the fit.
// Run after `npm run build`: node bench/trainer-workers.mjs [--tasks 480] [--chunk 40] [--workers 1,2]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '480' },
    chunk: { type: 'string', default: '40' },
    workers: { type: 'string', default: '1,2' },
  },
});
const tasks = Number(values.tasks);
const chunkTasks = Number(values.chunk);
const dir = mkdtempSync(join(tmpdir(), 'mo-bench-workers-'));
const rows = [];
for (const workers of values.workers.split(',').map(Number)) {
  const id = `bench-${workers}`;
  const job = join(dir, `${id}.json`);
  writeFileSync(
    job,
    JSON.stringify({
      format: 'metricopt.job',
      schemaVersion: 1,
      id,
      dataset: { source: 'a9a' },
      metric: { builtin: 'mcr' },
      recipe: 'tuned',
      seed: 1,
      fanOut: true,
      overrides: { metaTrain: { trajectories: { tasks } } },
      output: { valueFunctionId: id },
      checkpoint: { chunkTasks, queryBatch: 48 },
    }),
  );
  const store = join(dir, `store-${workers}`);
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      'bin/metricopt.mjs',
      'train',
      '--job',
      job,
      '--store',
      store,
      '--queue',
      join(dir, `queue-${workers}`),
      '--workers',
      String(workers),
      '--backend',
      'wasm',
    ],
    { encoding: 'utf8' },
  );
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) {
    console.error(r.stderr);
    process.exit(1);
  }
  const jobDir = join(store, 'jobs', id);
  const fanned = statSync(join(jobDir, 'fanned-out.json')).mtimeMs;
  const last = Math.max(
    ...readdirSync(join(jobDir, 'tasks'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => statSync(join(jobDir, 'tasks', f)).mtimeMs),
  );
  const stage = (last - fanned) / 1000;
  rows.push({ workers, stage, wall, rate: tasks / stage });
  console.error(`${workers} worker(s): stage ${stage.toFixed(1)} s, whole run ${wall.toFixed(1)} s`);
}
console.log(
  `A9A, ${tasks} tasks x 50 steps x 5 queries, chunks of ${chunkTasks}, wasm, ${cpus().length} cores, load average at the end ${loadavg()[0].toFixed(1)}\n`,
);
console.log('| workers | trajectory + query stage (s) | tasks / s | speed-up | whole run (s) |');
console.log('| ------: | ---------------------------: | --------: | -------: | ------------: |');
for (const r of rows) {
  console.log(
    `| ${r.workers} | ${r.stage.toFixed(1)} | ${r.rate.toFixed(1)} | ${(r.rate / rows[0].rate).toFixed(2)}x | ${r.wall.toFixed(1)} |`,
  );
}
