#!/usr/bin/env node
/**
 * Value-function API benchmarks, measured side by side in one run:
 *  (1) in-process gradient at batch 1, d = 16 and 128: hand-written kernel vs tfjs (wasm);
 *  (2) HTTP on loopback at a fixed concurrency: `gradient` d = 128 batch 1 in JSON and in the
 *      binary form, next to `GET /healthz` on the same server (the framework's own ceiling).
 * The server runs in its own process; autocannon runs in this one (2 cores: one each).
 *
 *   node bench/value-api.mjs                      # 5 s per HTTP run, 5 interleaved rounds
 *   BENCH_DURATION=5 BENCH_ROUNDS=1 node bench/value-api.mjs
 *
 * Prints a Markdown table for bench/RESULTS.md and writes dist/bench-value-api/results.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'bench-value-api');
const duration = Number(process.env.BENCH_DURATION ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);

const loadAverageBefore = loadavg()[0];

// 1. Compile the TypeScript bench entry points (they import shared/, functions/ and the test helper).
execFileSync(
  process.execPath,
  [
    join(root, 'node_modules/typescript/bin/tsc'),
    ...['--strict', '--lib', 'es2023', '--module', 'nodenext', '--moduleResolution', 'nodenext'],
    ...['--target', 'es2022', '--skipLibCheck', '--types', 'node', '--rootDir', root, '--outDir', out],
    join(root, 'bench/value-api-server.ts'),
    join(root, 'bench/value-api-inprocess.ts'),
  ],
  { stdio: 'inherit' },
);

// 2. In-process kernel vs tfjs.
const inProcess = JSON.parse(
  execFileSync(process.execPath, [join(out, 'bench/value-api-inprocess.js')], { encoding: 'utf8' }).trim(),
);

// 3. HTTP: server in a child process.
const server = spawn(process.execPath, [join(out, 'bench/value-api-server.js'), '0'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const [url, floorUrl] = await new Promise((resolve, reject) => {
  let buffer = '';
  server.stdout.on('data', (chunk) => {
    buffer += chunk;
    const m = /READY (\S+) (\S+)/.exec(buffer);
    if (m) resolve([m[1], m[2]]);
  });
  server.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
});

const d = 128;
const phi = Array.from({ length: d }, (_, i) => Math.sin(i + 1));
const scenarios = {
  healthz: { path: '/healthz', method: 'GET' },
  'gradient-json': {
    path: `/v1/value-functions/bench-d${d}/gradient`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ phi }),
  },
  'post-floor (no work)': {
    base: () => floorUrl,
    path: '/floor',
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: Buffer.from(Float32Array.from(phi).buffer),
  },
  'gradient-binary': {
    path: `/v1/value-functions/bench-d${d}/gradient`,
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: Buffer.from(Float32Array.from(phi).buffer),
  },
};

/** Server CPU time (user + system) in ms, from /proc (Linux; undefined elsewhere). */
function serverCpuMs() {
  try {
    const fields = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, at USER_HZ = 100
  } catch {
    return undefined;
  }
}

function run(s, seconds) {
  return autocannon({
    url: (s.base ? s.base() : url) + s.path,
    method: s.method,
    headers: s.headers,
    body: s.body,
    connections,
    duration: seconds,
  });
}

const results = Object.fromEntries(Object.keys(scenarios).map((k) => [k, []]));
for (const s of Object.values(scenarios)) await run(s, 2); // warm-up: JIT, caches
for (let r = 0; r < rounds; r++) {
  for (const [name, s] of Object.entries(scenarios)) {
    const cpu0 = serverCpuMs();
    const res = await run(s, duration);
    const cpu1 = serverCpuMs();
    if (res.non2xx || res.errors || res.timeouts)
      throw new Error(`${name}: ${res.non2xx} non-2xx, ${res.errors} errors`);
    results[name].push({
      rps: res.requests.average,
      p50: res.latency.p50,
      p99: res.latency.p99,
      total: res.requests.total,
      cpuUsPerRequest:
        cpu0 === undefined || cpu1 === undefined ? undefined : ((cpu1 - cpu0) * 1000) / res.requests.total,
    });
  }
}
server.kill('SIGTERM');

// Medians over the interleaved rounds: the machine is shared, and a burst of someone else's
// work during one round should not decide the ratio.
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const http = Object.fromEntries(
  Object.entries(results).map(([name, runs]) => [
    name,
    {
      rps: Math.round(median(runs.map((x) => x.rps))),
      rpsMin: Math.round(Math.min(...runs.map((x) => x.rps))),
      rpsMax: Math.round(Math.max(...runs.map((x) => x.rps))),
      p50: median(runs.map((x) => x.p50)),
      p99: median(runs.map((x) => x.p99)),
      serverCpuUs:
        runs[0].cpuUsPerRequest === undefined ? undefined : Math.round(median(runs.map((x) => x.cpuUsPerRequest))),
      runs,
    },
  ]),
);
const ceiling = http.healthz;
for (const v of Object.values(http)) {
  v.rpsOfCeiling = Math.round((100 * v.rps) / ceiling.rps);
  v.p99OverCeiling = Math.round((100 * v.p99) / ceiling.p99) / 100;
}
const report = {
  date: new Date().toISOString(),
  node: process.version,
  loadAverageBefore,
  loadAverageAfter: loadavg()[0],
  connections,
  duration,
  rounds,
  inProcess,
  http,
};
writeFileSync(join(out, 'results.json'), JSON.stringify(report, null, 2));

const lines = [];
lines.push(
  `In-process, batch 1 (median / p99 per call, µs; kernels: ${inProcess.rows[0].f32.backend}, tfjs backend: ${inProcess.rows[0].tfjs.backend})`,
  '',
);
lines.push(
  '| d | forward | gradient | gradient / forward | JS-loop fallback: forward / gradient (median) | tfjs forward | tfjs gradient | tfjs / our gradient | max abs grad diff vs tfjs |',
);
lines.push('|---|---|---|---|---|---|---|---|---|');
for (const r of inProcess.rows) {
  const s = (x) => `${x.medianUs} / ${x.p99Us}`;
  lines.push(
    `| ${r.d} | ${s(r.f32.forward)} | ${s(r.f32.gradient)} | ${r.f32.gradientOverForward} | ${r.jsLoops.forward.medianUs} / ${r.jsLoops.gradient.medianUs} | ${s(r.tfjs.forward)} | ${s(r.tfjs.gradient)} | ${r.speedup}x | ${r.agreement.maxGradDiff.toExponential(1)} |`,
  );
}
lines.push(
  '',
  `HTTP loopback, ${connections} connections, ${rounds} interleaved rounds x ${duration} s per route (medians; ` +
    `1-min load average ${report.loadAverageBefore.toFixed(1)} before, ${report.loadAverageAfter.toFixed(1)} after)`,
  '',
);
lines.push('| route | req/s (min-max) | % of /healthz | p50 ms | p99 ms | p99 / healthz p99 | server CPU µs/req |');
lines.push('|---|---|---|---|---|---|---|');
for (const [name, v] of Object.entries(http)) {
  lines.push(
    `| ${name} | ${v.rps} (${v.rpsMin}-${v.rpsMax}) | ${v.rpsOfCeiling}% | ${v.p50} | ${v.p99} | ${v.p99OverCeiling} | ${v.serverCpuUs ?? 'n/a'} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
