#!/usr/bin/env node
/**
 * Value-function API benchmarks, measured side by side in one run:
 *  (1) in-process gradient at batch 1, d = 16 and 128: hand-written kernel vs tfjs (wasm);
 *  (2) HTTP on loopback at a fixed concurrency: `gradient` d = 128 batch 1 in JSON and in the
 *      binary form, next to `GET /healthz` on the same server (the framework's own ceiling), a
 *      bare POST route on Hono (post-floor) and on Node's http module alone (node-floor).
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
const [url, floorUrl, nodeFloorUrl] = await new Promise((resolve, reject) => {
  let buffer = '';
  server.stdout.on('data', (chunk) => {
    buffer += chunk;
    const m = /READY (\S+) (\S+) (\S+)/.exec(buffer);
    if (m) resolve([m[1], m[2], m[3]]);
  });
  server.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
});

const d = 128;
// 256 different phi, cycled through by every connection: a training loop sends a new phi each
// step, and the same numbers over and over would flatter any code that converts numbers to text
// (V8 caches number-to-string results).
const phis = Array.from({ length: 256 }, (_, k) => Array.from({ length: d }, (_, i) => Math.sin(i + 1 + 0.37 * k)));
const jsonBodies = phis.map((phi) => JSON.stringify({ phi }));
const binaryBodies = phis.map((phi) => Buffer.from(Float32Array.from(phi).buffer));
const binaryHeaders = { 'content-type': 'application/octet-stream' };
const scenarios = {
  healthz: { path: '/healthz', method: 'GET' },
  'gradient-json': {
    path: `/v1/value-functions/bench-d${d}/gradient`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    bodies: jsonBodies,
  },
  'post-floor (no work)': {
    base: () => floorUrl,
    path: '/floor',
    method: 'POST',
    headers: binaryHeaders,
    bodies: binaryBodies,
  },
  'node-floor (no work, no Hono)': {
    base: () => nodeFloorUrl,
    path: '/floor',
    method: 'POST',
    headers: binaryHeaders,
    bodies: binaryBodies,
  },
  'gradient-binary': {
    path: `/v1/value-functions/bench-d${d}/gradient`,
    method: 'POST',
    headers: binaryHeaders,
    bodies: binaryBodies,
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

/**
 * One autocannon run, plus every response time in ms at full resolution: autocannon's own
 * histogram keeps whole milliseconds, too coarse for p99s of 0-3 ms (a 0 ms p99 makes the
 * ratio meaningless), so p50/p99 come from these.
 */
async function run(s, seconds) {
  const times = [];
  const instance = autocannon({
    url: (s.base ? s.base() : url) + s.path,
    method: s.method,
    headers: s.headers,
    ...(s.bodies
      ? { requests: s.bodies.map((body) => ({ method: s.method, path: s.path, headers: s.headers, body })) }
      : {}),
    connections,
    duration: seconds,
  });
  instance.on('response', (_client, _status, _bytes, responseTime) => times.push(responseTime));
  const res = await instance;
  const sorted = Float64Array.from(times).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { res, p50: at(0.5), p99: at(0.99) };
}

const results = Object.fromEntries(Object.keys(scenarios).map((k) => [k, []]));
for (const s of Object.values(scenarios)) await run(s, 2); // warm-up: JIT, caches
for (let r = 0; r < rounds; r++) {
  for (const [name, s] of Object.entries(scenarios)) {
    const cpu0 = serverCpuMs();
    const { res, p50, p99 } = await run(s, duration);
    const cpu1 = serverCpuMs();
    if (res.non2xx || res.errors || res.timeouts)
      throw new Error(`${name}: ${res.non2xx} non-2xx, ${res.errors} errors`);
    results[name].push({
      rps: res.requests.average,
      p50: Math.round(p50 * 1000) / 1000,
      p99: Math.round(p99 * 1000) / 1000,
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
const j = inProcess.jsonText;
const s2 = (x) => `${x.medianUs} / ${x.p99Us}`;
lines.push(
  '',
  `JSON text, d = ${j.d}, batch 1, 256 different phi (median / p99 per call, µs; body ${j.bodyBytes} B, answer ${j.answerBytes} B)`,
  '',
  '| step | this code | JS built-ins | built-ins / this code |',
  '|---|---|---|---|',
  `| read a body (\`parseJson\` + \`checkPhiBody\`, vs \`JSON.parse\` + float32 rows) | ${s2(j.read)} | ${s2(j.readViaJsonParse)} | ${(j.readViaJsonParse.medianUs / j.read.medianUs).toFixed(1)}x |`,
  `| write a gradient answer (\`phiAnswer\`: 9 digits by \`toPrecision\`, + UTF-8, vs shortest number-to-string text + UTF-8) | ${s2(j.write)} | ${s2(j.writeViaStrings)} | ${(j.writeViaStrings.medianUs / j.write.medianUs).toFixed(1)}x |`,
);
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
