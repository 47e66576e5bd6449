/**
 * Starts the value API on loopback over a temporary store holding random checkpoints of
 * d = 16 and d = 128 (test/helpers/make-checkpoint.ts), prints `READY <url>` and serves until
 * killed. Run by bench/value-api.mjs in its own process so the load generator has the other core.
 */
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { startValueApiServer } from '../functions/value-api/node.js';
import { FsObjectStore } from '../shared/adapters/object-store.fs.js';
import { saveCheckpoint } from '../shared/storage/value-function-store.js';
import { makeCheckpoint } from '../test/helpers/make-checkpoint.js';

const port = Number(process.argv[2] ?? 0);
const store = new FsObjectStore(mkdtempSync(join(tmpdir(), 'metricopt-bench-')));
for (const d of [16, 128]) {
  const { version: _, ...checkpoint } = makeCheckpoint({ id: `bench-d${d}`, d, seed: d });
  await saveCheckpoint(store, checkpoint);
}
const settings = {
  store,
  port,
  auth: { mode: 'none' as const },
  maxBodyBytes: 6 * 1024 * 1024,
  maxRows: 1024,
  refreshMs: 1000,
};
const server = await startValueApiServer(settings);
// The floor for a POST with a body: the same framework, body reading and 516-byte float32 answer
// as the binary gradient route, with no parsing, no lookup and no compute. It shows how much of
// the gap to GET /healthz is HTTP itself (request body, bigger answer) rather than our work.
const floor = new Hono();
const answer = new Uint8Array(4 * 129);
floor.post('/floor', async (c) => {
  await c.req.arrayBuffer();
  return new Response(answer, {
    headers: { 'content-type': 'application/octet-stream', 'x-value-function-version': '1' },
  });
});
const floorUrl = await new Promise<string>((resolve) => {
  serve({ fetch: floor.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(`http://127.0.0.1:${info.port}`));
});
// The same floor on Node's http module alone (no Hono, no @hono/node-server): the least any
// POST with this body and answer can cost here, whatever serves it.
const nodeFloor = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'x-value-function-version': '1',
      'content-length': answer.byteLength,
    });
    res.end(answer);
  });
});
const nodeFloorUrl = await new Promise<string>((resolve) => {
  nodeFloor.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(nodeFloor.address() as AddressInfo).port}`));
});
process.stdout.write(`READY ${server.url} ${floorUrl} ${nodeFloorUrl}\n`);
process.on('SIGTERM', () => {
  server.close().then(() => process.exit(0));
});
