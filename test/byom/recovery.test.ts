import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { serve } from '../../cli/commands/serve.js';
import { inProcessFitLauncher } from '../../shared/adapters/fit-launcher.worker-thread.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { FitLauncher } from '../../shared/ports/fit.port.js';
import { jobKeys } from '../../shared/storage/layout.js';
import { jobStatus, readJobStatus, writeJobStatus } from '../../shared/storage/job-documents.js';
import { ValueApiClient, ValueApiError } from '../../clients/typescript/index.js';
import { useTestBackend } from '../helpers/backend.js';
import { makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

/**
 * Issue 23, item 4: a server killed mid-fit leaves a `running` status document nobody renews.
 * Its lease expires, the job is shown `stalled`, `start` re-queues it; a job queued in a server
 * that stopped before running it is re-queued too; clients' waits surface it and time out.
 */
type Json = Record<string, unknown> & { state?: string };
const lines = recordTrajectories(makeWorld(3, 2), { trajectories: 8, steps: 6, K: 3, seed: 5 });
let dir: string;
let store: FsObjectStore;

const appWith = (launcher: FitLauncher) =>
  buildValueApi({
    store,
    auth: { mode: 'none' },
    maxBodyBytes: 1024 * 1024,
    maxRows: 64,
    refreshMs: 0,
    fitLauncher: launcher,
    log: () => undefined,
  }).app;
const request = (app: ReturnType<typeof appWith>, method: string, path: string, body?: string, type?: string) =>
  app.request(path, {
    method,
    ...(body === undefined ? {} : { body, headers: { 'content-type': type ?? 'application/json' } }),
  });

/** A job created, uploaded and started on a server whose launcher never ran it (killed). */
async function startedOnADeadServer(id: string): Promise<void> {
  const dead = appWith({ via: 'in-process', launch: async () => undefined });
  const create = JSON.stringify({
    id,
    metric: { name: 'bowl', direction: 'minimize' },
    overrides: { metaTrain: { ensemble: 1, train: { epochs: 2 } } },
    output: { valueFunctionId: `${id}-vf` },
  });
  expect((await request(dead, 'POST', '/v1/fit-jobs', create)).status).toBe(201);
  expect(
    (await request(dead, 'POST', `/v1/fit-jobs/${id}/observations`, toJsonLines(lines), 'application/x-ndjson')).status,
  ).toBe(200);
  expect((await request(dead, 'POST', `/v1/fit-jobs/${id}/start`, '{}')).status).toBe(202);
}

beforeAll(async () => {
  await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-recovery-'));
  store = new FsObjectStore(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('fit jobs whose runner died', () => {
  it('shows a running job whose lease expired as stalled; start re-queues it and it completes', async () => {
    await startedOnADeadServer('killed');
    // The runner wrote a running status (lease one minute) and was killed -9 two minutes ago.
    const at = Date.now() - 120_000;
    await writeJobStatus(store, {
      ...jobStatus(
        { jobId: 'killed', backend: 'wasm', startedAt: new Date(at).toISOString() },
        { stage: 'fit', progress: { done: 10, total: 400 } },
      ),
      leaseExpiresAt: new Date(at + 60_000).toISOString(),
    });
    const launcher = inProcessFitLauncher(store, () => undefined);
    const app = appWith(launcher);
    const before = (await (await request(app, 'GET', '/v1/fit-jobs/killed')).json()) as Json;
    expect(before.state).toBe('stalled');
    const restarted = await request(app, 'POST', '/v1/fit-jobs/killed/start', '{}');
    expect(restarted.status).toBe(202);
    await launcher.idle();
    const after = (await (await request(app, 'GET', '/v1/fit-jobs/killed')).json()) as Json;
    expect(after).toMatchObject({ state: 'done', status: { valueFunction: { id: 'killed-vf', version: 1 } } });
    expect((after.status as { leaseExpiresAt?: string }).leaseExpiresAt).toBeUndefined();
  });

  it('runs a job queued in a server that stopped before it ran, when started again', async () => {
    await startedOnADeadServer('orphan');
    const launcher = inProcessFitLauncher(store, () => undefined);
    const app = appWith(launcher);
    expect(((await (await request(app, 'GET', '/v1/fit-jobs/orphan')).json()) as Json).state).toBe('queued');
    expect((await request(app, 'POST', '/v1/fit-jobs/orphan/start', '{}')).status).toBe(202);
    await launcher.idle();
    expect(((await (await request(app, 'GET', '/v1/fit-jobs/orphan')).json()) as Json).state).toBe('done');
    // Started again once done: nothing is launched.
    expect((await request(app, 'POST', '/v1/fit-jobs/orphan/start', '{}')).status).toBe(200);
  });

  it('keeps a lease in the status document while running, and none once done', async () => {
    const doc = JSON.parse(new TextDecoder().decode(await store.get(jobKeys('orphan').status)));
    expect(doc).toMatchObject({ state: 'done' });
    expect(doc.leaseExpiresAt).toBeUndefined();
  });
});

describe('metricopt serve at start-up', () => {
  it('runs again, without a start call, the fit jobs a killed server left stalled or queued', async () => {
    await startedOnADeadServer('stalled-at-boot');
    const at = Date.now() - 120_000;
    await writeJobStatus(store, {
      ...jobStatus(
        { jobId: 'stalled-at-boot', backend: 'wasm', startedAt: new Date(at).toISOString() },
        { stage: 'fit' },
      ),
      leaseExpiresAt: new Date(at + 60_000).toISOString(),
    });
    await startedOnADeadServer('queued-at-boot');
    const stateOf = async (id: string) => {
      const s = await readJobStatus(store, id);
      return s.ok ? s.value.state : 'none';
    };
    const seen: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    await serve(
      {
        port: '0',
        host: '127.0.0.1',
        store: dir,
        apiKeyHash: [],
        maxRows: '64',
        maxBodyBytes: '1000000',
        refreshMs: '1000',
      },
      () => undefined,
      async () => {
        // The server is up; nobody calls start. Both jobs run to the end (or this gives up after a minute).
        for (let i = 0; i < 600; i++) {
          seen.splice(0, 2, await stateOf('stalled-at-boot'), await stateOf('queued-at-boot'));
          if (seen.every((s) => s === 'done')) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      },
    );
    vi.restoreAllMocks();
    expect(seen).toEqual(['done', 'done']);
  }, 90_000);
});

describe('ValueApiClient.waitFitJob', () => {
  const fakeClient = (states: string[]) => {
    let i = 0;
    const fetchImpl = (async () =>
      new Response(
        JSON.stringify({ jobId: 'j', state: states[Math.min(i++, states.length - 1)], status: null, uploads: {} }),
        { headers: { 'content-type': 'application/json' } },
      )) as unknown as typeof fetch;
    return new ValueApiClient({ baseUrl: 'http://127.0.0.1:1', fetch: fetchImpl });
  };

  it('surfaces a stalled job as FIT_JOB_STALLED instead of polling forever', async () => {
    const client = fakeClient(['running', 'stalled']);
    await expect(client.waitFitJob('j', { pollMs: 1 })).rejects.toMatchObject({ code: 'FIT_JOB_STALLED' });
  });

  it('surfaces a cancelled job as FIT_JOB_CANCELLED', async () => {
    const client = fakeClient(['cancelled']);
    await expect(client.waitFitJob('j', { pollMs: 1 })).rejects.toMatchObject({ code: 'FIT_JOB_CANCELLED' });
  });

  it('has a default timeout', () => {
    expect(ValueApiClient.DEFAULT_FIT_WAIT_MS).toBeGreaterThan(0);
    expect(ValueApiError).toBeDefined();
  });
});
