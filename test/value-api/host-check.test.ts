import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { localHostCheck } from '../../functions/value-api/auth.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { SECRET_KEY, tempStore } from './fixtures.js';

let fixture: Awaited<ReturnType<typeof tempStore>>;
let open: RunningServer;
let keyed: RunningServer;

beforeAll(async () => {
  fixture = await tempStore([{ id: 'vf', d: 4 }]);
  const common = { store: fixture.store, port: 0, maxBodyBytes: 1 << 16, maxRows: 8, refreshMs: 1000 };
  open = await startValueApiServer({ ...common, auth: { mode: 'none' } });
  keyed = await startValueApiServer({ ...common, auth: { mode: 'api-key', hashes: [hashApiKey(SECRET_KEY)] } });
});

afterAll(async () => {
  await open.close();
  await keyed.close();
  await fixture.cleanup();
});

/** A raw request with the Host header given (fetch does not let a caller set it). */
function send(
  server: RunningServer,
  host: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method: body === undefined ? 'GET' : 'POST',
        headers: {
          host,
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const parsed = JSON.parse(text) as { error?: { code: string } };
          resolve({ status: res.statusCode as number, ...(parsed.error ? { code: parsed.error.code } : {}) });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const predict = JSON.stringify({ phi: [0.1, 0.2, 0.3, 0.4] });

describe('Host check with auth off (DNS rebinding)', () => {
  it('refuses a foreign Host on every /v1 route, fast lane included, and keeps /healthz open', async () => {
    expect(await send(open, 'evil.example:8787', '/v1/value-functions/vf/predict', predict)).toEqual({
      status: 403,
      code: 'HOST_NOT_ALLOWED',
    });
    // Twice: the lane remembers the hosts it accepted, never a refused one.
    expect((await send(open, 'evil.example', '/v1/value-functions/vf/gradient', predict)).status).toBe(403);
    expect((await send(open, 'evil.example', '/v1/value-functions')).code).toBe('HOST_NOT_ALLOWED');
    expect((await send(open, 'evil.example', '/healthz')).status).toBe(200);
  });

  it('accepts localhost, IP literals and the listening host', async () => {
    for (const host of [`localhost:${open.port}`, `127.0.0.1:${open.port}`, `[::1]:${open.port}`, 'app.localhost']) {
      expect(await send(open, host, '/v1/value-functions/vf/predict', predict)).toEqual({ status: 200 });
    }
  });

  it('accepts any Host when API keys guard the routes', async () => {
    const auth = { authorization: `Bearer ${SECRET_KEY}` };
    expect((await send(keyed, 'api.example.com', '/v1/value-functions/vf/predict', predict, auth)).status).toBe(200);
  });
});

describe('localHostCheck', () => {
  it('allows loopback names, IP literals and the given names, with or without a port', () => {
    const ok = localHostCheck(['box.lan']);
    expect(
      ['localhost', 'LOCALHOST:1', 'a.localhost', '10.0.0.7:80', '[::1]', '[fe80::1]:9', 'box.lan:8787'].map(ok),
    ).toEqual([true, true, true, true, true, true, true]);
    expect(['evil.example', 'localhost.evil.example', '127.0.0.1.nip.io', '[::1', '', undefined].map(ok)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});
