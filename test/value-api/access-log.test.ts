import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startValueApiServer } from '../../functions/value-api/node.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';

describe('the access log of the Node server (issue 23, item 7)', () => {
  it('logs one line per answered request, with method, path without its query, status and time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mo-access-'));
    const logged: Record<string, unknown>[] = [];
    const server = await startValueApiServer({
      store: new FsObjectStore(dir),
      port: 0,
      auth: { mode: 'none' },
      maxBodyBytes: 1024,
      maxRows: 8,
      refreshMs: 0,
      accessLog: true,
      fitLauncher: { via: 'in-process', launch: async () => undefined },
      log: (e) => logged.push(e),
    });
    try {
      await (await fetch(`${server.url}/healthz`)).text();
      await (await fetch(`${server.url}/v1/value-functions/nope?version=2`)).text();
      const access = logged.filter((e) => e.msg === 'access');
      expect(access.map(({ ms: _, ...e }) => e)).toEqual([
        { level: 'info', msg: 'access', method: 'GET', path: '/healthz', status: 200 },
        { level: 'info', msg: 'access', method: 'GET', path: '/v1/value-functions/nope', status: 404 },
      ]);
      expect(typeof access[0]?.ms).toBe('number');
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
