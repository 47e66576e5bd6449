#!/usr/bin/env node
// Hostile request bodies (issue 10): `{"phi":[{},{},...]}` of 1, 3 and 6 MB (wrongly typed
// elements) sent to predict and to guide of a Node server (fast lane on), each size in a fresh
// process; also `"ab"` and `null` elements (bodies that pass the container bound and reach
// JSON.parse and the element loop) and `0` (numbers: a well-typed body of the wrong length, for
// the cost of JSON.parse of a plain body of that size). Per body: the wall time to the 400, the longest event-loop stall while it was handled
// (perf_hooks.monitorEventLoopDelay, 1 ms resolution: every request on the server, /healthz
// included, waits that long), the peak RSS of the process over its idle baseline
// (resourceUsage().maxRSS) and the answer's code. Prints one JSON line per size and route.
// Usage: npm run build && node bench/hostile-body.mjs [--sizes 1,3,6] [--repeat 3] [--elements '{}|"ab"|null|0']
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,3,6' },
    repeat: { type: 'string', default: '3' },
    child: { type: 'string' },
    route: { type: 'string', default: 'predict' },
    elements: { type: 'string', default: '{}|"ab"|null|0' },
  },
});

if (values.child === undefined) {
  for (const element of values.elements.split('|'))
    for (const mb of values.sizes.split(',').map(Number)) {
      for (const route of ['predict', 'guide']) {
        const r = spawnSync(
          process.execPath,
          [process.argv[1], '--child', String(mb), '--route', route, '--repeat', values.repeat, '--elements', element],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
            encoding: 'utf8',
            timeout: 600_000,
          },
        );
        process.stdout.write(r.stdout || `${JSON.stringify({ mb, route, error: r.error?.message ?? r.status })}\n`);
      }
    }
} else {
  await child(Number(values.child), values.route, Number(values.repeat), values.elements);
}

async function child(mb, route, repeat, element) {
  const { FsObjectStore } = await import('../dist/shared/adapters/object-store.fs.js');
  const { saveCheckpoint } = await import('../dist/shared/storage/value-function-store.js');
  const { startValueApiServer } = await import('../dist/functions/value-api/node.js');
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-hostile-'));
  const store = new FsObjectStore(dir);
  await saveCheckpoint(store, checkpoint(16));
  const server = await startValueApiServer({
    store,
    port: 0,
    auth: { mode: 'none' },
    maxBodyBytes: 6 * 1024 * 1024 + 64,
    maxRows: 1024,
    refreshMs: 1000,
    log: () => undefined,
  });
  const url = `${server.url}/v1/value-functions/hostile/${route}`;
  const post = (body) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  // Warm up: compile the checkpoint, JIT the paths.
  const phi = Array.from({ length: 16 }, (_, i) => i / 16);
  for (let i = 0; i < 20; i++) await (await post(JSON.stringify({ phi, lossGradients: [phi] }))).arrayBuffer();
  const elements = Math.floor((mb * 1024 * 1024 - 40) / (element.length + 1));
  const body = `{"phi":[${`${element},`.repeat(elements - 1)}${element}],"lossGradients":[]}`;
  const baseRss = process.resourceUsage().maxRSS / 1024;
  const runs = [];
  for (let i = 0; i < repeat; i++) {
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    const res = await post(body);
    const answer = await res.json();
    const ms = performance.now() - t0;
    h.disable();
    runs.push({ ms, stallMs: h.max / 1e6, status: res.status, code: answer.error?.code });
  }
  const peakRss = process.resourceUsage().maxRSS / 1024;
  await server.close();
  await rm(dir, { recursive: true, force: true });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const round = (x) => Math.round(x * 10) / 10;
  process.stdout.write(
    `${JSON.stringify({
      route,
      element,
      mb,
      bytes: body.length,
      elements,
      status: runs[0]?.status,
      code: runs[0]?.code,
      medianMs: round(median(runs.map((r) => r.ms))),
      maxStallMs: round(Math.max(...runs.map((r) => r.stallMs))),
      peakRssOverIdleMB: round(peakRss - baseRss),
      runs: runs.length,
    })}\n`,
  );
}

/** A small valid checkpoint (d inputs, one hidden layer of 8) without the test helpers. */
function checkpoint(d) {
  const layer = (nin, nout) => ({
    in: nin,
    out: nout,
    weights: Array.from({ length: nin * nout }, (_, i) => Math.sin(i + 1) / Math.sqrt(nin)),
    bias: Array.from({ length: nout }, () => 0.01),
  });
  return {
    format: 'metricopt.value-function',
    schemaVersion: 1,
    id: 'hostile',
    createdAt: '2026-12-01T00:00:00.000Z',
    libraryVersion: '0.1.0',
    d,
    metric: { name: 'mcr', direction: 'minimize' },
    recipe: 'tuned',
    dataset: 'a9a',
    adapter: { kind: 'input-bias', d },
    inputNormalisation: { mean: Array(d).fill(0), std: Array(d).fill(1) },
    targetNormalisation: { mean: 0.3, std: 0.05 },
    hiddenActivation: 'relu',
    embeddingLayer: 0,
    members: [{ layers: [layer(d, 8), layer(8, 1)] }],
    training: { tasks: 1, heldOutTasks: 1, heldOutMae: 0, constantMae: 0, spearman: 0 },
  };
}
