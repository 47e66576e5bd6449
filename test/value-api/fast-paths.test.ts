import { getRequestListener } from '@hono/node-server';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashApiKey } from '../../functions/value-api/auth.js';
import { createFastLane } from '../../functions/value-api/node-fast-lane.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { ApiError } from '../../functions/value-api/errors.js';
import { handOverReading, readPhiInput, tryReadPhiInput } from '../../functions/value-api/phi-routes.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { checkPhiBody, plainPhi } from '../../functions/value-api/validate.js';
import { predictRequestSchema } from '../../shared/schemas/api.js';
import { Rng } from '../../shared/util/random.js';
import { SECRET_KEY, tempStore } from './fixtures.js';

// Heavy in-process work (the fast lane against the Hono stack on many bodies): longer than the unit tier's 20-s default under load.
vi.setConfig({ testTimeout: 60_000 });

const D = 16;

/** Values of every kind JSON bodies carry: finite, non-finite, wrong types, nested, empty. */
function junk(rng: Rng): unknown {
  return [null, true, 'NaN', '1e5', {}, [], [[]], { phi: 1 }, '', 0, -0, 1e308, [1, [2]], [[1], 2]][rng.int(14)];
}

/** Bodies in the style of fuzz.test.ts: mostly valid, each of the rest wrong in one way. */
function bodies(rng: Rng, count: number, d: number): unknown[] {
  const row = (n = d) => Array.from(rng.normals(n));
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    switch (i % 12) {
      case 0:
        out.push({ phi: row() });
        break;
      case 1:
        out.push({ phi: Array.from({ length: 1 + rng.int(4) }, () => row()) });
        break;
      case 2:
        out.push({ phi: row(rng.int(2 * d)) });
        break;
      case 3: {
        const phi: unknown[] = row();
        phi[rng.int(d)] = junk(rng);
        out.push({ phi });
        break;
      }
      case 4: {
        const rows: unknown[] = [row(), row()];
        rows[rng.int(2)] = junk(rng);
        out.push({ phi: rows });
        break;
      }
      case 5:
        out.push(junk(rng));
        break;
      case 6:
        out.push({ phi: junk(rng) });
        break;
      case 7:
        out.push({ phi: row(), extra: junk(rng) });
        break;
      case 8:
        out.push({ nope: row() });
        break;
      case 9:
        out.push([row()]);
        break;
      case 10:
        out.push({ phi: [] });
        break;
      default:
        out.push({ phi: [row(), row(d + 1)] });
    }
  }
  return out;
}

describe('plainPhi (the hand-written check of predictRequestSchema)', () => {
  it('accepts only what the zod schema accepts, with the same phi, on 6,000 valid and malformed bodies', () => {
    const rng = new Rng(11);
    let accepted = 0;
    for (const body of bodies(rng, 6000, D)) {
      // Through JSON text, as on the wire (this also turns -0 into 0 and drops undefined).
      const parsed: unknown = JSON.parse(JSON.stringify(body) ?? 'null');
      const fast = plainPhi(parsed);
      const zod = predictRequestSchema.safeParse(parsed);
      if (fast !== undefined) {
        accepted++;
        expect(zod.success).toBe(true);
        expect(fast).toEqual(zod.data?.phi);
      } else if (zod.success) {
        // The check may decline a valid body (zod then answers); it must not on the plain shapes.
        const phi = zod.data.phi;
        const plain = Array.isArray(phi[0]) || phi.length === 0 || typeof phi[0] === 'number';
        expect(plain).toBe(false);
      }
    }
    expect(accepted).toBeGreaterThan(2000);
  });
});

describe('checkPhiBody (the bounded check that words the 400 for what plainPhi declines)', () => {
  it('refuses exactly what the zod schema refuses, and returns the same phi otherwise, on 6,000 bodies', () => {
    const rng = new Rng(12);
    let refused = 0;
    for (const body of bodies(rng, 6000, D)) {
      const parsed: unknown = JSON.parse(JSON.stringify(body) ?? 'null');
      const zod = predictRequestSchema.safeParse(parsed);
      let phi: unknown;
      let error: { code?: string } | undefined;
      try {
        phi = checkPhiBody('predict', parsed);
      } catch (e) {
        error = e as { code?: string };
      }
      const empty =
        Array.isArray((parsed as { phi?: unknown } | null)?.phi) && (parsed as { phi: [] }).phi.length === 0;
      if (empty) {
        // The schema says minItems 1; the hand check lets the use-case answer EMPTY_BATCH.
        expect([zod.success, phi]).toEqual([false, []]);
        continue;
      }
      expect(error === undefined).toBe(zod.success);
      if (zod.success) expect(phi).toEqual(zod.data.phi);
      else {
        refused++;
        expect(error?.code).toBe('INVALID_BODY');
      }
    }
    expect(refused).toBeGreaterThan(1000);
  });
});

describe('the Node fast lane', () => {
  let fixture: Awaited<ReturnType<typeof tempStore>>;
  let withLane: RunningServer;
  let withoutLane: RunningServer;
  const MAX_BODY = 64 * 1024;

  beforeAll(async () => {
    fixture = await tempStore([
      { id: 'lane', d: D, seed: 9, metric: { name: 'f1', direction: 'maximize' } },
      { id: 'lane', d: D, seed: 10, metric: { name: 'f1', direction: 'maximize' } },
    ]);
    const settings = {
      store: fixture.store,
      port: 0,
      auth: { mode: 'api-key' as const, hashes: [hashApiKey(SECRET_KEY)] },
      maxBodyBytes: MAX_BODY,
      maxRows: 8,
      refreshMs: 1000,
      log: () => undefined,
    };
    withLane = await startValueApiServer(settings);
    withoutLane = await startValueApiServer({ ...settings, fastLane: false });
  });

  afterAll(async () => {
    await withLane.close();
    await withoutLane.close();
    await fixture.cleanup();
  });

  interface Call {
    path: string;
    type?: string | undefined;
    auth?: string | undefined;
    body: string | Uint8Array;
  }

  async function answer(base: string, call: Call) {
    const headers: Record<string, string> = {};
    if (call.type !== undefined) headers['content-type'] = call.type;
    if (call.auth !== undefined) headers.authorization = call.auth;
    const res = await fetch(base + call.path, { method: 'POST', headers, body: call.body });
    // Every header but Date (the clock's), so a header one path adds or drops shows up.
    const sent = [...res.headers].filter(([name]) => name !== 'date').sort(([a], [b]) => a.localeCompare(b));
    return { status: res.status, headers: sent, body: Buffer.from(await res.arrayBuffer()).toString('base64') };
  }

  it('answers 1,200 valid and malformed requests with the same bytes as the Hono app alone', async () => {
    const rng = new Rng(77);
    const key = `Bearer ${SECRET_KEY}`;
    const calls: Call[] = [];
    for (const [i, body] of bodies(rng, 900, D).entries()) {
      const route = ['predict', 'gradient'][i % 2] as string;
      const query = ['', '', '?version=1', '?version=2', '?version=3', '?version=01', '?version=x'][rng.int(7)];
      const id = ['lane', 'lane', 'lane', 'nope', 'LANE'][rng.int(5)];
      calls.push({
        path: `/v1/value-functions/${id}/${route}${query}`,
        type: ['application/json', 'application/json; charset=utf-8', 'text/plain', undefined][rng.int(4)],
        auth: [key, key, key, 'Bearer wrong', undefined][rng.int(5)],
        body: JSON.stringify(body) ?? 'null',
      });
    }
    for (let i = 0; i < 300; i++) {
      const n = rng.next() < 0.8 ? D * (1 + rng.int(3)) : rng.int(4 * D);
      const values = new Float32Array(n).map(() => rng.normal());
      if (rng.next() < 0.1 && n > 0) values[rng.int(n)] = Number.NaN;
      const bytes = new Uint8Array(values.buffer);
      calls.push({
        path: `/v1/value-functions/lane/${rng.next() < 0.5 ? 'predict' : 'gradient'}`,
        type: 'application/octet-stream',
        auth: key,
        body: rng.next() < 0.1 ? bytes.subarray(0, Math.max(0, bytes.length - 1)) : bytes,
      });
    }
    const rows = (n: number) => JSON.stringify({ phi: Array.from({ length: n }, () => Array.from(rng.normals(D))) });
    calls.push({ path: '/v1/value-functions/lane/gradient', type: 'application/json', auth: key, body: rows(9) });
    calls.push({ path: '/v1/value-functions/lane/gradient', type: 'application/json', auth: key, body: rows(300) });
    const statuses = new Set<number>();
    for (const call of calls) {
      const [a, b] = [await answer(withLane.url, call), await answer(withoutLane.url, call)];
      expect(a, `${call.path} ${call.type}`).toEqual(b);
      statuses.add(a.status);
    }
    expect([...statuses].sort()).toEqual([200, 400, 401, 404, 413, 415]);
  });

  it('answers valid requests itself and hands everything else to the Hono app', async () => {
    const fixtureD = D;
    const { app, service } = buildValueApi({
      store: fixture.store,
      auth: { mode: 'none' },
      maxBodyBytes: MAX_BODY,
      maxRows: 8,
      refreshMs: 1000,
    });
    const hono = getRequestListener(app.fetch, { autoCleanupIncoming: false });
    const handed: string[] = [];
    const lane = createFastLane({
      service,
      maxBodyBytes: MAX_BODY,
      authorization: () => true,
      fallback: (req, res) => {
        handed.push(req.url as string);
        return hono(req, res);
      },
    });
    const server: Server = createServer((req, res) => lane(req, res) || hono(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const post = (path: string, body: string) =>
        fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const phi = JSON.stringify({ phi: Array.from(new Rng(1).normals(fixtureD)) });
      // The first call compiles the checkpoint in the Hono path; the next are the lane's.
      expect((await post('/v1/value-functions/lane/gradient', phi)).status).toBe(200);
      handed.length = 0;
      expect((await post('/v1/value-functions/lane/gradient', phi)).status).toBe(200);
      expect((await post('/v1/value-functions/lane/predict?version=1', phi)).status).toBe(200);
      expect(handed).toEqual(['/v1/value-functions/lane/predict?version=1']); // version 1 not compiled yet
      expect((await post('/v1/value-functions/lane/predict?version=1', phi)).status).toBe(200);
      expect((await post('/v1/value-functions/lane/predict', '{"phi":[1]}')).status).toBe(400);
      expect((await post('/v1/value-functions/lane/predict?version=7', phi)).status).toBe(404);
      expect(handed).toEqual([
        '/v1/value-functions/lane/predict?version=1',
        '/v1/value-functions/lane/predict',
        '/v1/value-functions/lane/predict?version=7',
      ]);
    } finally {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
  });
});

describe('tryReadPhiInput and handOverReading (the fast lane reads a body once, also when it hands it on)', () => {
  const body = (text: string) => new TextEncoder().encode(text);

  it("gives the app's readPhiInput the lane's reading of the same bytes, once, when handed over", () => {
    const bytes = body('{"phi":[1,2,3]}');
    const read = tryReadPhiInput('predict', false, bytes, 8);
    expect(read).toEqual({ kind: 'json', phi: [1, 2, 3] });
    // Not handed over: nothing is remembered (a new, equal value).
    expect(readPhiInput('predict', false, bytes, 8)).not.toBe(read);
    handOverReading(bytes, read);
    const taken = readPhiInput('predict', false, bytes, 8);
    expect(taken).toBe(read);
    // Taken once: a second call parses again (an equal, new value).
    const again = readPhiInput('predict', false, bytes, 8);
    expect(again).not.toBe(taken);
    expect(again).toEqual(taken);
  });

  it('hands the same error to the app for a body that fails its check', () => {
    const bytes = body(`{"phi":[${'{},'.repeat(100)}{}]}`);
    const lane = tryReadPhiInput('gradient', false, bytes, 8);
    expect(lane).toBeInstanceOf(ApiError);
    expect((lane as ApiError).code).toBe('INVALID_BODY');
    handOverReading(bytes, lane);
    expect(() => readPhiInput('gradient', false, bytes, 8)).toThrow(lane as ApiError);
  });
});
