import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ServeOptions, serve } from '../../cli/commands/serve.js';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { saveCheckpoint } from '../../shared/storage/value-function-store.js';
import { makeCheckpoint } from '../helpers/make-checkpoint.js';
import { SECRET_KEY } from './fixtures.js';

const defaults: ServeOptions = {
  port: '0',
  host: '127.0.0.1',
  apiKeyHash: [],
  maxRows: '1024',
  maxBodyBytes: '1048576',
  refreshMs: '1000',
};

/** A `metricopt demo --out DIR` layout: the store is DIR/store. */
async function demoOut(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-serve-'));
  await mkdir(join(dir, 'store'));
  const { version: _, ...checkpoint } = makeCheckpoint({ id: 'demo-mcr', d: 16 });
  await saveCheckpoint(new FsObjectStore(join(dir, 'store')), checkpoint);
  return dir;
}

describe('metricopt serve', () => {
  it('serves the store of a demo output folder, with API keys', async () => {
    const dir = await demoOut();
    const out: string[] = [];
    let listed: unknown;
    await serve(
      { ...defaults, store: dir, apiKeyHash: [hashApiKey(SECRET_KEY).toUpperCase()] },
      (t) => out.push(t),
      async (server) => {
        expect((await fetch(`${server.url}/v1/value-functions`)).status).toBe(401);
        const res = await fetch(`${server.url}/v1/value-functions`, {
          headers: { authorization: `Bearer ${SECRET_KEY}` },
        });
        listed = await res.json();
      },
    );
    expect((listed as { valueFunctions: Array<{ id: string }> }).valueFunctions.map((v) => v.id)).toEqual(['demo-mcr']);
    expect(out.join('')).toMatch(
      /^metricopt serve: listening on http:\/\/127\.0\.0\.1:\d+ \(store file:\/\/.*\/store, 1 value function\(s\), auth API keys \(1\)\)\n$/,
    );
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts --no-fast-lane from old scripts and serves the same', async () => {
    const dir = await demoOut();
    const out: string[] = [];
    const status = async (server: { url: string }) => {
      const res = await fetch(`${server.url}/v1/value-functions/demo-mcr/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ phi: Array.from({ length: 16 }, (_, i) => i / 16) }),
      });
      expect(res.status).toBe(200);
    };
    await serve({ ...defaults, store: dir, fastLane: false }, (t) => out.push(t), status);
    expect(out[0]).toMatch(/auth off\)\n$/);
    await rm(dir, { recursive: true, force: true });
  });

  it('prints the hash to configure for a key', async () => {
    const out: string[] = [];
    await serve(
      { ...defaults, hashKey: 'abc' },
      (t) => out.push(t),
      async () => undefined,
    );
    expect(out).toEqual(['ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n']);
  });

  it('rejects a missing store, a bad hash, a bad limit and a port in use with one-line errors', async () => {
    const never = async () => undefined;
    await expect(serve(defaults, () => undefined, never)).rejects.toMatchObject({ code: 'USAGE' });
    await expect(
      serve({ ...defaults, store: '/tmp', apiKeyHash: ['abc'] }, () => undefined, never),
    ).rejects.toMatchObject({
      code: 'USAGE',
      message:
        "--api-key-hash must be a SHA-256 hex digest (64 hex characters), optionally with :read or :write, got 'abc'",
    });
    const dir = await demoOut();
    await expect(serve({ ...defaults, store: dir, maxRows: '0' }, () => undefined, never)).rejects.toMatchObject({
      code: 'USAGE',
      message: "--max-rows must be a positive integer, got '0'",
    });
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    await expect(serve({ ...defaults, store: dir, port: String(port) }, () => undefined, never)).rejects.toMatchObject({
      code: 'PORT_IN_USE',
    });
    blocker.close();
    await rm(dir, { recursive: true, force: true });
  });
});
