import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildValueApi } from '../../functions/value-api/service.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { runTrainerWorker } from '../../shared/use-cases/jobs/trainer-worker.js';
import { useTestBackend } from '../helpers/backend.js';
import { makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';
import { jsonLinesLogger } from '../../shared/adapters/logger.json-lines.js';

/** The API with a jobs queue sends {"kind":"job","jobId"} on start; a trainer worker runs the fit job. */
let dir: string;
let backend: string;

beforeAll(async () => {
  backend = await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-worker-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('a fit job through the jobs queue', () => {
  it('start queues it, a trainer worker fits it, the value function is served; a second message changes nothing', async () => {
    const store = new FsObjectStore(join(dir, 'store'));
    const queue = new LocalQueue(join(dir, 'queue'));
    const { app } = buildValueApi({
      store,
      auth: { mode: 'none' },
      maxBodyBytes: 1 << 20,
      maxRows: 64,
      refreshMs: 0,
      jobsQueue: queue,
    });
    const call = (path: string, body: string, type = 'application/json') =>
      app.request(path, { method: 'POST', headers: { 'content-type': type }, body });
    await call(
      '/v1/fit-jobs',
      JSON.stringify({
        id: 'queued-fit',
        metric: { direction: 'minimize' },
        overrides: { metaTrain: { ensemble: 1, train: { epochs: 3 } } },
        output: { valueFunctionId: 'queued-vf' },
      }),
    );
    const lines = recordTrajectories(makeWorld(3, 1), { trajectories: 8, steps: 6, K: 3, seed: 2 });
    expect(
      (await call('/v1/fit-jobs/queued-fit/observations', toJsonLines(lines), 'application/x-ndjson')).status,
    ).toBe(200);
    expect((await call('/v1/fit-jobs/queued-fit/start', '')).status).toBe(202);
    // At-least-once delivery: the same message twice.
    await queue.send([JSON.stringify({ kind: 'job', jobId: 'queued-fit' })]);
    const events: string[] = [];
    const summary = await runTrainerWorker({
      store,
      queue,
      load: () => Promise.reject(new Error('a fit job loads no data set')),
      backend,
      progress: silentProgress,
      workerId: 'w1',
      idleExitMs: 300,
      logger: jsonLinesLogger((line) => {
        const { event, outcome, code } = JSON.parse(line);
        events.push(`${event}:${String(outcome ?? code ?? '')}`);
      }),
    });
    expect(summary.jobs).toBe(2);
    expect(events.filter((e) => e.startsWith('fit-job'))).toEqual(['fit-job:done', 'fit-job:already-done']);
    const state = (await (await app.request('/v1/fit-jobs/queued-fit')).json()) as Record<string, unknown>;
    expect(state).toMatchObject({
      state: 'done',
      startedVia: 'queue',
      status: { valueFunction: { id: 'queued-vf', version: 1 } },
    });
    expect((await app.request('/v1/value-functions/queued-vf')).status).toBe(200);
  });
});
