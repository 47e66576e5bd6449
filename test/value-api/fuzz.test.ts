import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startValueApiServer, type RunningServer } from '../../functions/value-api/node.js';
import { Rng } from '../../shared/util/random.js';
import { tempStore } from './fixtures.js';

// Heavy in-process work (1,400 request bodies): longer than the unit tier's 20-s default under load.
vi.setConfig({ testTimeout: 60_000 });

const D = 16;
const MAX_BODY = 256 * 1024;
const MAX_ROWS = 64;

let fixture: Awaited<ReturnType<typeof tempStore>>;
let server: RunningServer;

beforeAll(async () => {
  fixture = await tempStore([{ id: 'fuzz', d: D, seed: 5 }]);
  server = await startValueApiServer({
    store: fixture.store,
    port: 0,
    auth: { mode: 'none' },
    maxBodyBytes: MAX_BODY,
    maxRows: MAX_ROWS,
    refreshMs: 1000,
  });
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

interface Case {
  kind: string;
  route: 'predict' | 'gradient' | 'guide';
  contentType: string;
  body: Uint8Array | string;
}

const enc = new TextEncoder();

/**
 * Bodies that are each wrong in at least one way, so every answer must be a 4xx JSON error:
 * wrong types, wrong sizes, huge arrays, deep nesting, invalid UTF-8, NaN spelled as a string.
 */
function makeCase(rng: Rng, i: number): Case {
  const route = (['predict', 'gradient', 'guide'] as const)[rng.int(3)] as Case['route'];
  const json = (kind: string, body: string): Case => ({ kind, route, contentType: 'application/json', body });
  const goodRow = () => Array.from(rng.normals(D));
  const badLength = () => {
    let n = rng.int(40);
    if (n === D) n = D + 1;
    return Array.from(rng.normals(n));
  };
  const junk = (): unknown =>
    [null, true, 'NaN', 'Infinity', '-Infinity', '1e5', {}, [], [[]], { phi: 1 }, '', '\u0000'][rng.int(12)];
  switch (i % 14) {
    case 0:
      return json('top-level junk', JSON.stringify(junk()));
    case 1:
      return json('phi of wrong type', JSON.stringify({ phi: junk(), lossGradients: [] }));
    case 2:
      return json('phi of wrong length', JSON.stringify({ phi: badLength(), lossGradients: [] }));
    case 3: {
      const phi: unknown[] = goodRow();
      phi[rng.int(D)] = junk();
      return json('phi with a non-number', JSON.stringify({ phi, lossGradients: [] }));
    }
    case 4: {
      const rows: unknown[] = Array.from({ length: 1 + rng.int(5) }, goodRow);
      rows[rng.int(rows.length)] = rng.next() < 0.5 ? badLength() : junk();
      return json('batch with a bad row', JSON.stringify({ phi: rows, lossGradients: [goodRow(), rows] }));
    }
    case 5: {
      const text = JSON.stringify({ phi: goodRow(), lossGradients: [goodRow()] });
      return json('truncated JSON', text.slice(0, rng.int(text.length - 1)));
    }
    case 6: {
      const bytes = new Uint8Array(1 + rng.int(200)).map(() => rng.int(256));
      bytes[rng.int(bytes.length)] = 0xff; // never valid UTF-8
      return { kind: 'random bytes', route, contentType: 'application/json', body: bytes };
    }
    case 7: {
      const depth = 10 + rng.int(100_000);
      return json('deep nesting', `{"phi":${'['.repeat(depth)}1${rng.next() < 0.5 ? ']'.repeat(depth) : ''}}`);
    }
    case 8: {
      const n = rng.next() < 0.5 ? MAX_ROWS + 1 + rng.int(100) : 40_000 + rng.int(40_000);
      const rows = n <= 200 ? Array.from({ length: n }, goodRow) : Array.from({ length: n }, () => 0.123456);
      return json(n <= 200 ? 'too many rows' : 'huge array', JSON.stringify({ phi: rows, lossGradients: [] }));
    }
    case 9: {
      const at = rng.int(D);
      const items = Array.from({ length: D }, (_, k) => (k === at ? ['NaN', '-Infinity', 'nan'][rng.int(3)] : '0.5'));
      return json('NaN literal', `{"phi":[${items.join(',')}],"lossGradients":[]}`);
    }
    case 10: {
      const body = JSON.stringify({
        phi: goodRow(),
        lossGradients: rng.next() < 0.5 ? 'x' : Array.from({ length: 17 }, goodRow),
        P: junk(),
        seed: -1,
      });
      return { kind: 'guide junk fields', route: 'guide', contentType: 'application/json', body };
    }
    case 11: {
      // Binary with a size that is not n x d float32 (the route decides: guide has no binary form).
      let bytes = 1 + rng.int(400);
      if (bytes % (4 * D) === 0) bytes += 1 + rng.int(3);
      return { kind: 'binary wrong size', route, contentType: 'application/octet-stream', body: new Uint8Array(bytes) };
    }
    case 12: {
      const values = new Float32Array(D * (1 + rng.int(3))).map(() => rng.normal());
      values[rng.int(values.length)] = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][
        rng.int(3)
      ] as number;
      return {
        kind: 'binary non-finite',
        route: rng.next() < 0.5 ? 'predict' : 'gradient',
        contentType: 'application/octet-stream',
        body: new Uint8Array(values.buffer),
      };
    }
    default:
      return {
        kind: 'odd content type',
        route,
        contentType: ['text/plain', 'multipart/form-data; boundary=x', 'application/xml', 'image/png'][
          rng.int(4)
        ] as string,
        body: enc.encode(JSON.stringify({ phi: goodRow(), lossGradients: [] })),
      };
  }
}

describe('value API fuzz', () => {
  it('answers 1,400 malformed bodies with 4xx JSON errors and stays healthy', async () => {
    const rng = new Rng(2026);
    const seen = new Map<string, Set<number>>();
    const unexpected: string[] = [];
    for (let i = 0; i < 1400; i++) {
      const c = makeCase(rng, i);
      const res = await fetch(`${server.url}/v1/value-functions/fuzz/${c.route}`, {
        method: 'POST',
        headers: { 'content-type': c.contentType },
        body: c.body,
      });
      const text = await res.text();
      let code: unknown;
      try {
        code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
      } catch {
        code = undefined;
      }
      if (res.status < 400 || res.status >= 500 || typeof code !== 'string') {
        unexpected.push(`${c.kind} ${c.route}: ${res.status} ${text.slice(0, 120)}`);
      }
      const statuses = seen.get(c.kind) ?? new Set<number>();
      statuses.add(res.status);
      seen.set(c.kind, statuses);
    }
    expect(unexpected).toEqual([]);
    expect(seen.size).toBe(15);
    const statuses = new Set([...seen.values()].flatMap((s) => [...s]));
    expect([...statuses].sort()).toEqual([400, 413, 415]);
    // The server still answers, and still answers correctly.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const ok = await fetch(`${server.url}/v1/value-functions/fuzz/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phi: new Array(D).fill(0.1) }),
    });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { values: number[] }).values).toHaveLength(1);
  });
});
