#!/usr/bin/env node
// Runs every benchmark in turn (after `npm run build`); each prints markdown for bench/RESULTS.md.
// The efficacy matrix is long (about an hour) and runs only with --matrix.
import { spawnSync } from 'node:child_process';

const runs = [
  ['bench/step-cost.mjs'],
  ['bench/evaluation-queue.mjs'],
  ['bench/value-api.mjs'],
  ...(process.argv.includes('--matrix') ? [['bench/efficacy-matrix.mjs']] : []),
];
for (const args of runs) {
  console.log(`\n## node ${args.join(' ')}\n`);
  const r = spawnSync('node', args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
