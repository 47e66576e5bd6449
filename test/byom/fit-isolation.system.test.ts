import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inProcessFitLauncher } from '../../shared/adapters/fit-launcher.worker-thread.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';
import { ensureBuiltCli } from '../jobs/built-cli.js';
import { makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

/**
 * Issue 23, item 3: a fit inside `metricopt serve` runs in a worker thread with bounded
 * settings, a wall-clock budget, progress in its status document and a cancel route, so the
 * server keeps answering while it runs. (Timings are in bench/, not here: these tests check
 * that requests are answered while the fit is still running, which a fit on the serving
 * thread cannot allow.)
 */
// biome-ignore lint/suspicious/noExplicitAny: the tests read nested fields of JSON answers
type Json = Record<string, any>;

const lines = recordTrajectories(makeWorld(6, 3), { trajectories: 16, steps: 12, K: 4, seed: 2 });
const workerUrl = pathToFileURL(join(import.meta.dirname, '../../dist/shared/adapters/fit-launcher.worker.js'));
let dir: string;
let store: FsObjectStore;
let server: RunningServer;
let launcher: ReturnType<typeof inProcessFitLauncher>;
const logged: Json[] = [];

const call = async (method: string, path: string, body?: string, type = 'application/json') => {
  const res = await fetch(`${server.url}${path}`, {
    method,
    ...(body === undefined ? {} : { body, headers: { 'content-type': type } }),
  });
  return { status: res.status, body: (await res.json()) as Json };
};
const big = (id: string, epochs = 2000) =>
  JSON.stringify({
    id,
    metric: { name: 'bowl', direction: 'minimize' },
    overrides: { metaTrain: { ensemble: 2, train: { hidden: [512, 512, 512], epochs } } },
    output: { valueFunctionId: `${id}-vf` },
  });

async function until<T>(what: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await what();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('until: gave up');
}

beforeAll(async () => {
  ensureBuiltCli();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-iso-'));
  store = new FsObjectStore(dir);
  launcher = inProcessFitLauncher(store, (e) => logged.push(e), { workerUrl, budgetMs: 120_000 });
  server = await startValueApiServer({
    store,
    port: 0,
    auth: { mode: 'none' },
    maxBodyBytes: 1024 * 1024,
    maxRows: 64,
    refreshMs: 0,
    fitLauncher: launcher,
    log: (e) => logged.push(e),
  });
}, 300_000);
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('fits in metricopt serve', () => {
  it('refuses settings above the limits with 400 and stores nothing', async () => {
    const r = await call(
      'POST',
      '/v1/fit-jobs',
      JSON.stringify({
        id: 'huge',
        metric: { name: 'bowl', direction: 'minimize' },
        overrides: { metaTrain: { train: { hidden: [2048, 2048], epochs: 100000 } } },
        output: { valueFunctionId: 'huge-vf' },
      }),
    );
    expect({ status: r.status, code: r.body.error?.code }).toEqual({ status: 400, code: 'INVALID_BODY' });
    expect(await store.list('jobs/huge/')).toEqual([]);
  });

  it('answers while a large fit runs, shows its progress, and cancels it', async () => {
    expect((await call('POST', '/v1/fit-jobs', big('large'))).status).toBe(201);
    expect(
      (await call('POST', '/v1/fit-jobs/large/observations', toJsonLines(lines), 'application/x-ndjson')).status,
    ).toBe(200);
    expect((await call('POST', '/v1/fit-jobs/large/start', '{}')).status).toBe(202);
    // The status shows training steps while the fit is still running.
    const running = await until(
      () => call('GET', '/v1/fit-jobs/large'),
      (r) => (r.body.status?.progress?.done ?? 0) > 0,
    );
    expect(running.body).toMatchObject({ state: 'running', status: { stage: 'fit' } });
    expect(running.body.status.progress.done).toBeLessThan(running.body.status.progress.total);
    expect((await call('GET', '/healthz')).status).toBe(200);
    // Cancel: the worker is stopped, nothing is published.
    const cancelled = await call('POST', '/v1/fit-jobs/large/cancel', '{}');
    expect({ status: cancelled.status, state: cancelled.body.state }).toEqual({ status: 200, state: 'cancelled' });
    await launcher.idle();
    expect((await call('GET', '/v1/fit-jobs/large')).body).toMatchObject({ state: 'cancelled' });
    expect((await listCheckpointVersions(store)).has('large-vf')).toBe(false);
    // A cancelled job does not start again.
    expect((await call('POST', '/v1/fit-jobs/large/start', '{}')).body.state).toBe('cancelled');
  });

  it('stops a fit past its wall-clock budget with FIT_BUDGET_EXCEEDED', async () => {
    const tight = inProcessFitLauncher(store, (e) => logged.push(e), { workerUrl, budgetMs: 1500 });
    const other = await startValueApiServer({
      store,
      port: 0,
      auth: { mode: 'none' },
      maxBodyBytes: 1024 * 1024,
      maxRows: 64,
      refreshMs: 0,
      fitLauncher: tight,
      log: () => undefined,
    });
    try {
      const at = (path: string, body: string, type = 'application/json') =>
        fetch(`${other.url}${path}`, { method: 'POST', body, headers: { 'content-type': type } });
      expect((await at('/v1/fit-jobs', big('budget'))).status).toBe(201);
      await at('/v1/fit-jobs/budget/observations', toJsonLines(lines), 'application/x-ndjson');
      expect((await at('/v1/fit-jobs/budget/start', '{}')).status).toBe(202);
      await tight.idle();
      const r = (await (await fetch(`${other.url}/v1/fit-jobs/budget`)).json()) as Json;
      expect(r).toMatchObject({ state: 'failed', status: { lastError: { code: 'FIT_BUDGET_EXCEEDED' } } });
      expect((await listCheckpointVersions(store)).has('budget-vf')).toBe(false);
    } finally {
      await other.close();
    }
  });

  it('runs an ordinary fit to done in its worker; the value function is served', async () => {
    expect((await call('POST', '/v1/fit-jobs', big('small', 3).replace('[512,512,512]', '[16]'))).status).toBe(201);
    await call('POST', '/v1/fit-jobs/small/observations', toJsonLines(lines), 'application/x-ndjson');
    expect((await call('POST', '/v1/fit-jobs/small/start', '{}')).status).toBe(202);
    await launcher.idle();
    const r = await call('GET', '/v1/fit-jobs/small');
    expect(r.body).toMatchObject({ state: 'done', status: { valueFunction: { id: 'small-vf', version: 1 } } });
    expect((await call('GET', '/v1/value-functions/small-vf')).status).toBe(200);
    expect(logged.filter((e) => e.level === 'error')).toEqual([]);
  });
});
