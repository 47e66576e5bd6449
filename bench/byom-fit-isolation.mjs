#!/usr/bin/env node
// BYOM under a running fit (issue 23, item 3): `metricopt serve`'s server (dist/, in this
// process, auth off, a folder store) with one fit job of the largest settings the API allows
// (hidden [512, 512, 512], 2000 epochs, ensemble 8) over N observation lines of d = 16, started
// and left running; meanwhile one client sends GET /healthz and GET /v1/fit-jobs/{id}
// alternately, one at a time, for --seconds, and records each latency. Then the fit is
// cancelled. Prints one JSON line per mode: `worker` (the default: the fit in a worker thread)
// and, with --compare, `serving-thread` (the fit on the serving thread, as before issue 23).
// Usage: npm run build && nice -n 10 node bench/byom-fit-isolation.mjs [--lines 10000] [--seconds 30] [--compare]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '30' },
    compare: { type: 'boolean', default: false },
  },
});
const { startValueApiServer } = await import('../dist/functions/value-api/node.js');
const { inProcessFitLauncher } = await import('../dist/shared/adapters/fit-launcher.worker-thread.js');
const { FsObjectStore } = await import('../dist/shared/adapters/object-store.fs.js');

/** N lines of d = 16: trajectories of 50 steps drifting to a bowl's minimum, metric every 5th step. */
function observations(n) {
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  };
  const out = [];
  for (let i = 0; out.length < n; i++) {
    let phi = Array.from({ length: 16 }, () => 2 * rand());
    for (let step = 0; step < 50 && out.length < n; step++) {
      phi = phi.map((v) => 0.95 * v + 0.05 * rand());
      const line = { trajectory: `t${i}`, step, phi };
      if (step % 5 === 0 || step === 49) line.metric = phi.reduce((a, v) => a + v * v, 0);
      out.push(JSON.stringify(line));
    }
  }
  return `${out.join('\n')}\n`;
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x) => Math.round(x * 10) / 10;

async function run(mode) {
  const dir = await mkdtemp(join(tmpdir(), 'mo-bench-byom-'));
  const store = new FsObjectStore(dir);
  const launcher = inProcessFitLauncher(store, () => undefined, {
    onServingThread: mode === 'serving-thread',
    budgetMs: 3_600_000,
  });
  const server = await startValueApiServer({
    store,
    port: 0,
    auth: { mode: 'none' },
    maxBodyBytes: 64 * 1024 * 1024,
    maxRows: 1024,
    refreshMs: 1000,
    fitLauncher: launcher,
    log: () => undefined,
  });
  const post = (path, body, type = 'application/json') =>
    fetch(`${server.url}${path}`, { method: 'POST', body, headers: { 'content-type': type } });
  const job = {
    id: 'big',
    metric: { name: 'bowl', direction: 'minimize' },
    overrides: { metaTrain: { ensemble: 8, train: { hidden: [512, 512, 512], epochs: 2000 } } },
    output: { valueFunctionId: 'big-vf' },
  };
  if ((await post('/v1/fit-jobs', JSON.stringify(job))).status !== 201) throw new Error('create failed');
  const up = await post('/v1/fit-jobs/big/observations', observations(Number(values.lines)), 'application/x-ndjson');
  if (up.status !== 200) throw new Error(`upload failed: ${up.status} ${await up.text()}`);
  if ((await post('/v1/fit-jobs/big/start', '{}')).status !== 202) throw new Error('start failed');
  const health = [];
  const status = [];
  let last;
  const until = performance.now() + Number(values.seconds) * 1000;
  let failed = 0;
  // A request the server did not answer within its 30 s request timeout counts as failed.
  const timed = async (into, f) => {
    const t = performance.now();
    try {
      const r = await f();
      into.push(performance.now() - t);
      return r;
    } catch {
      failed++;
      return undefined;
    }
  };
  while (performance.now() < until) {
    await timed(health, async () => (await fetch(`${server.url}/healthz`)).text());
    last = (await timed(status, async () => (await fetch(`${server.url}/v1/fit-jobs/big`)).json())) ?? last;
    await new Promise((r) => setTimeout(r, 20));
  }
  await post('/v1/fit-jobs/big/cancel', '{}').catch(() => undefined);
  // On the serving thread a cancel only takes effect between training steps (minutes at these
  // sizes): the figures are in, so that run is not waited for (the process exits at the end).
  if (mode === 'worker') await launcher.idle();
  await server.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  const stats = (xs) =>
    xs.length === 0
      ? { n: 0 }
      : { n: xs.length, p50: round(pct(xs, 50)), p99: round(pct(xs, 99)), max: round(Math.max(...xs)) };
  return {
    mode,
    lines: Number(values.lines),
    seconds: Number(values.seconds),
    healthzMs: stats(health),
    fitJobGetMs: stats(status),
    failedRequests: failed,
    lastSeen: { state: last?.state, stage: last?.status?.stage, progress: last?.status?.progress },
  };
}

console.log(JSON.stringify(await run('worker')));
if (values.compare) console.log(JSON.stringify(await run('serving-thread')));
process.exit(0);
