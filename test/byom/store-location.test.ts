import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServeOptions, serve } from '../../cli/commands/serve.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { jobStatus, writeJobStatus } from '../../shared/storage/job-documents.js';
import { saveCheckpoint } from '../../shared/storage/value-function-store.js';
import { runCli } from '../helpers/cli.js';
import { makeCheckpoint } from '../helpers/make-checkpoint.js';

/**
 * Issue 23, items 4 and 7: one meaning of `--store DIR` for serve, fit and jobs status (a store
 * folder, or a `metricopt demo --out` folder whose store is DIR/store), and serve refuses a
 * folder that does not exist unless told to create it.
 */
const defaults: ServeOptions = {
  port: '0',
  host: '127.0.0.1',
  apiKeyHash: [],
  maxRows: '1024',
  maxBodyBytes: '1000000',
  refreshMs: '1000',
};
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-store-location-'));
  // A demo output folder: its store is DIR/store, with a value function and a job in it.
  const store = new FsObjectStore(join(dir, 'store'));
  const { version: _, ...checkpoint } = makeCheckpoint({ id: 'demo-vf', d: 4 });
  await saveCheckpoint(store, checkpoint);
  await writeJobStatus(store, jobStatus({ jobId: 'demo-job', backend: 'wasm', startedAt: new Date().toISOString() }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('--store', () => {
  it('jobs status --store DIR reads the job that serve --store DIR sees', async () => {
    const r = await runCli(['jobs', 'status', 'demo-job', '--store', dir, '--json']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toMatchObject({ jobId: 'demo-job', state: 'running' });
  });

  it('serve refuses a store folder that does not exist, and starts on it with --create-store', async () => {
    const missing = join(dir, 'nope');
    await expect(
      serve(
        { ...defaults, store: missing },
        () => undefined,
        async () => undefined,
      ),
    ).rejects.toMatchObject({
      code: 'STORE_NOT_FOUND',
    });
    const out: string[] = [];
    await serve(
      { ...defaults, store: missing, createStore: true },
      (t) => out.push(t),
      async () => undefined,
    );
    expect(out.join('')).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+ .*0 value function/);
  });
});
