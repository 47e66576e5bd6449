#!/usr/bin/env node
// `npm start` (a9a MCR, default recipe) under /usr/bin/time -v at each thread count, one after
// the other: the load average before and after each run, wall, user + sys CPU seconds (less
// sensitive to other load on the machine than wall time), peak resident memory, every stage's
// seconds from report.json, and whether the test-split results are the same bits as the first
// run's. Extra demo flags after `--`.
// Usage: npm run build && node bench/pipeline-speed.mjs [--threads 1,2] [--out bench/out/pipeline-speed] [-- --replicates 5]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: {
    threads: { type: 'string', default: '1,2' },
    out: { type: 'string', default: 'bench/out/pipeline-speed' },
  },
  allowPositionals: true,
});
mkdirSync(values.out, { recursive: true });
const load = () =>
  loadavg()
    .map((v) => v.toFixed(2))
    .join(' ');
const field = (text, name) => text.match(new RegExp(`${name}: (.*)`))?.[1]?.trim();
const seconds = (clock) => clock.split(':').reduce((a, p) => a * 60 + Number(p), 0);

let first;
const lines = [
  '| threads | wall s | user s | sys s | peak RSS MB | load before | load after | pre-train | trajectories | queries | value function | meta-test | test results = first run |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
];
for (const threads of values.threads.split(',')) {
  const out = join(values.out, `threads-${threads}`);
  const before = load();
  const r = spawnSync(
    '/usr/bin/time',
    ['-v', 'node', 'bin/metricopt.mjs', 'demo', '--out', out, '--threads', threads, ...positionals],
    { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const after = load();
  if (r.status !== 0) throw new Error(`threads ${threads}: exit ${r.status}\n${r.stderr.slice(-2000)}`);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  const results = JSON.stringify(Object.entries(report.results).map(([k, v]) => [k, v.runs]));
  first ??= results;
  const sum = (k) => report.replicates.reduce((a, x) => a + x.timings[k], 0).toFixed(1);
  lines.push(
    `| ${threads} | ${seconds(field(r.stderr, 'Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)')).toFixed(1)} | ${field(r.stderr, 'User time \\(seconds\\)')} | ${field(r.stderr, 'System time \\(seconds\\)')} | ${(Number(field(r.stderr, 'Maximum resident set size \\(kbytes\\)')) / 1024).toFixed(0)} | ${before} | ${after} | ${sum('pretrainS')} | ${sum('trajectoriesS')} | ${sum('queriesS')} | ${sum('fitS')} | ${sum('metaTestS')} | ${results === first ? 'yes' : 'NO'} |`,
  );
  console.error(lines.at(-1));
}
console.log(lines.join('\n'));
