import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { inProcessFitLauncher } from '../../shared/adapters/fit-launcher.worker-thread.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { Queue } from '../../shared/ports/queue.port.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectError, type Json, listing } from './api-fixtures.js';
import { makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

const world = makeWorld(4, 9);
const lines = recordTrajectories(world, { trajectories: 12, steps: 8, K: 3, seed: 4 });
const KEY = 'mo_test_fit_routes_key_0123456789abcdef';
let dir: string;
let store: FsObjectStore;
let launcher: ReturnType<typeof inProcessFitLauncher>;
let app: ReturnType<typeof buildValueApi>['app'];
const logged: Record<string, unknown>[] = [];

const auth = { authorization: `Bearer ${KEY}` };
const post = (path: string, body: string | Uint8Array, type = 'application/x-ndjson', headers = {}) =>
  app.request(path, { method: 'POST', headers: { 'content-type': type, ...auth, ...headers }, body });
const createBody = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id,
    metric: { name: 'bowl', direction: 'minimize' },
    overrides: { metaTrain: { ensemble: 1, train: { epochs: 5 } } },
    output: { valueFunctionId: `${id}-vf` },
    ...extra,
  });

beforeAll(async () => {
  await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-api-'));
  store = new FsObjectStore(dir);
  launcher = inProcessFitLauncher(store, (e) => logged.push(e));
  app = buildValueApi({
    store,
    auth: { mode: 'api-key', hashes: [hashApiKey(KEY)] },
    maxBodyBytes: 64 * 1024,
    maxRows: 64,
    refreshMs: 0,
    fitLauncher: launcher,
    log: (e) => logged.push(e),
  }).app;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('fit-job routes', () => {
  it('creates a job (201), the same spec again is 200, another spec under the id is 409', async () => {
    const r1 = await post('/v1/fit-jobs', createBody('job-a'), 'application/json');
    expect(r1.status).toBe(201);
    expect(await r1.json()).toMatchObject({ jobId: 'job-a', valueFunctionId: 'job-a-vf', state: 'created' });
    expect((await post('/v1/fit-jobs', createBody('job-a'), 'application/json')).status).toBe(200);
    await expectError(
      await post('/v1/fit-jobs', createBody('job-a', { seed: 2 }), 'application/json'),
      409,
      'JOB_SPEC_MISMATCH',
    );
    await expectError(
      await post('/v1/fit-jobs', JSON.stringify({ id: 'Bad Id' }), 'application/json'),
      400,
      'INVALID_BODY',
    );
  });

  it('needs the API key (401)', async () => {
    const r = await app.request('/v1/fit-jobs/job-a', { headers: {} });
    await expectError(r, 401, 'UNAUTHORIZED');
  });

  it('uploads are idempotent per (trajectory, step): a retried batch is not counted twice', async () => {
    const half = toJsonLines(lines.slice(0, 50));
    const first = await post('/v1/fit-jobs/job-a/observations', half);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ accepted: 50, duplicates: 0, total: 50, trajectories: 6, d: 4 });
    const again = await post('/v1/fit-jobs/job-a/observations', half);
    expect(await again.json()).toEqual({ accepted: 0, duplicates: 50, total: 50, trajectories: 6, d: 4 });
    // Overlapping batch: only the new ones count.
    const rest = await post('/v1/fit-jobs/job-a/observations', toJsonLines(lines.slice(40)));
    expect(await rest.json()).toEqual({
      accepted: lines.length - 50,
      duplicates: 10,
      total: lines.length,
      trajectories: 12,
      d: 4,
    });
  });

  it('a bad batch is 400 with every bad line numbered, and nothing of it is stored', async () => {
    const before = await listing(dir);
    const text = [
      JSON.stringify({ trajectory: 'new', step: 0, phi: [1, 2, 3, 4], metric: 0.1 }),
      JSON.stringify({ trajectory: 'new', step: 1, phi: [1, 2, 3] }),
      'not json',
    ].join('\n');
    const body = await expectError(await post('/v1/fit-jobs/job-a/observations', text), 400, 'OBSERVATIONS_INVALID');
    expect(body.error?.details?.issues?.map((i) => i.line)).toEqual([2, 3]);
    expect(body.error?.message).toMatch(/line 2: phi has 3 entries, the first line has 4; line 3: not JSON/);
    // A (trajectory, step) stored with other values: 409, nothing stored.
    const changed = { ...lines[0], phi: [9, 9, 9, 9] };
    const conflict = await expectError(
      await post('/v1/fit-jobs/job-a/observations', `${JSON.stringify(changed)}\n`),
      409,
      'OBSERVATIONS_CONFLICT',
    );
    expect(conflict.error?.message).toMatch(/line 1: trajectory 'run-0' step 0 is already stored with other values/);
    // Wrong d against the stored observations.
    await expectError(
      await post(
        '/v1/fit-jobs/job-a/observations',
        `${JSON.stringify({ trajectory: 'x', step: 0, phi: [1, 2], metric: 1 })}\n`,
      ),
      400,
      'OBSERVATIONS_INVALID',
    );
    expect(await listing(dir)).toEqual(before);
  });

  it('limits: 413 over the body limit (a declared 100 MB upload too), 415 for other types, 404 for unknown jobs', async () => {
    const before = await listing(dir);
    const big = toJsonLines(recordTrajectories(world, { trajectories: 60, steps: 20, K: 3, seed: 8, prefix: 'big' }));
    expect(big.length).toBeGreaterThan(64 * 1024);
    await expectError(await post('/v1/fit-jobs/job-a/observations', big), 413, 'PAYLOAD_TOO_LARGE');
    await expectError(
      await post('/v1/fit-jobs/job-a/observations', '{}', 'application/x-ndjson', {
        'content-length': String(100 * 1024 * 1024),
      }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    await expectError(await post('/v1/fit-jobs/job-a/observations', 'x', 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await expectError(
      await post('/v1/fit-jobs/nope/observations', toJsonLines(lines.slice(0, 2))),
      404,
      'JOB_NOT_FOUND',
    );
    await expectError(await app.request('/v1/fit-jobs/nope', { headers: auth }), 404, 'JOB_NOT_FOUND');
    const wrongMethod = await app.request('/v1/fit-jobs/job-a/start', { headers: auth });
    expect(wrongMethod.status).toBe(405);
    expect(await listing(dir)).toEqual(before);
  });

  it('the binary form stores the same observations as JSON lines', async () => {
    expect((await post('/v1/fit-jobs', createBody('job-bin'), 'application/json')).status).toBe(201);
    const some = lines.slice(0, 18);
    const meta = new TextEncoder().encode(`${some.map(({ phi: _, ...rest }) => JSON.stringify(rest)).join('\n')}\n`);
    const phis = Float32Array.from(some.flatMap((l) => l.phi));
    const body = new Uint8Array(4 + meta.length + phis.byteLength);
    new DataView(body.buffer).setUint32(0, meta.length, true);
    body.set(meta, 4);
    body.set(new Uint8Array(phis.buffer), 4 + meta.length);
    const r = await post('/v1/fit-jobs/job-bin/observations', body, 'application/octet-stream');
    expect(await r.json()).toEqual({ accepted: 18, duplicates: 0, total: 18, trajectories: 2, d: 4 });
    // The same lines as JSON: all duplicates (phi was float32 in both).
    const same = await post('/v1/fit-jobs/job-bin/observations', toJsonLines(some));
    expect(await same.json()).toMatchObject({ accepted: 0, duplicates: 18 });
  });

  it('start refuses a set that cannot be fitted (400) and changes nothing', async () => {
    expect((await post('/v1/fit-jobs', createBody('job-thin'), 'application/json')).status).toBe(201);
    await post(
      '/v1/fit-jobs/job-thin/observations',
      toJsonLines([
        { trajectory: 'a', step: 0, phi: [0, 0, 0, 0], metric: 0.2 },
        { trajectory: 'a', step: 1, phi: [0, 0, 0, 1], metric: 0.3 },
        { trajectory: 'b', step: 0, phi: [0, 1, 0, 0], metric: 0.2 },
      ]),
    );
    const before = await listing(dir);
    const body = await expectError(
      await post('/v1/fit-jobs/job-thin/start', '', 'application/json'),
      400,
      'OBSERVATIONS_INSUFFICIENT',
    );
    expect(body.error?.message).toMatch(/trajectory 'b' has 1 metric observation/);
    expect(await listing(dir)).toEqual(before);
  });

  it('start and cancel take {} or no body; any other body is 400 INVALID_BODY and changes nothing', async () => {
    expect((await post('/v1/fit-jobs', createBody('job-body'), 'application/json')).status).toBe(201);
    const before = await listing(dir);
    for (const op of ['start', 'cancel']) {
      for (const bad of ['[]', '"x"', 'null', '3', '{"force":true}', '{"a":{}}']) {
        await expectError(await post(`/v1/fit-jobs/job-body/${op}`, bad, 'application/json'), 400, 'INVALID_BODY');
      }
      await expectError(await post(`/v1/fit-jobs/job-body/${op}`, '{', 'application/json'), 400, 'INVALID_JSON');
    }
    expect(await listing(dir)).toEqual(before);
    // {} passes the body check (start then refuses the empty job for its own reason).
    await expectError(await post('/v1/fit-jobs/job-body/start', '{}', 'application/json'), 400, 'OBSERVATIONS_EMPTY');
  });

  it('start runs the fit in the background (embedded); the value function is then served', async () => {
    const started = await post('/v1/fit-jobs/job-a/start', '', 'application/json');
    expect(started.status).toBe(202);
    expect(await started.json()).toMatchObject({ jobId: 'job-a', startedVia: 'in-process' });
    // Starting again launches nothing.
    expect((await post('/v1/fit-jobs/job-a/start', '', 'application/json')).status).toBe(200);
    await launcher.idle();
    const summary = (await (await app.request('/v1/fit-jobs/job-a', { headers: auth })).json()) as Json;
    expect(summary).toMatchObject({
      state: 'done',
      uploads: { observations: lines.length, trajectories: 12, d: 4 },
      status: { state: 'done', stage: 'done', valueFunction: { id: 'job-a-vf', version: 1 } },
    });
    const vf = await app.request('/v1/value-functions/job-a-vf', { headers: auth });
    expect(vf.status).toBe(200);
    const described = (await vf.json()) as Json;
    expect(described).toMatchObject({ id: 'job-a-vf', d: 4, metric: { name: 'bowl', direction: 'minimize' } });
    // The health flag, as the CLI prints it: in the status and in the served metadata (issue 23).
    const heldOut = (summary.status as { heldOut: { spearman: number; healthy: boolean } }).heldOut;
    expect(heldOut.healthy).toBe(heldOut.spearman >= 0.7);
    expect(described.healthy).toBe(heldOut.healthy);
    await expectError(
      await post('/v1/fit-jobs/job-a/observations', toJsonLines(lines.slice(0, 1))),
      409,
      'FIT_JOB_STARTED',
    );
    expect(logged.filter((e) => e.level === 'error')).toEqual([]);
  });

  it('with a jobs queue, start sends {"kind":"job","jobId":ID} and the job is queued', async () => {
    const sent: string[] = [];
    const queue = {
      send: async (bodies: string[]) => {
        sent.push(...bodies);
        return bodies.map((_, i) => String(i));
      },
    };
    const queued = buildValueApi({
      store,
      auth: { mode: 'none' },
      maxBodyBytes: 64 * 1024,
      maxRows: 64,
      refreshMs: 0,
      jobsQueue: queue as unknown as Queue,
    }).app;
    await queued.request('/v1/fit-jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: createBody('job-q'),
    });
    await queued.request('/v1/fit-jobs/job-q/observations', {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: toJsonLines(lines),
    });
    const r = await queued.request('/v1/fit-jobs/job-q/start', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).toBe(202);
    expect(await r.json()).toMatchObject({ state: 'queued', startedVia: 'queue', status: null });
    expect(sent.map((b) => JSON.parse(b))).toEqual([{ kind: 'job', jobId: 'job-q' }]);
  });

  it('without a queue or an in-process runner (Lambda), start is 503 and changes nothing', async () => {
    const bare = buildValueApi({
      store,
      auth: { mode: 'api-key', hashes: [hashApiKey(KEY)] },
      maxBodyBytes: 64 * 1024,
      maxRows: 64,
      refreshMs: 0,
    }).app;
    const before = await listing(dir);
    const r = await bare.request('/v1/fit-jobs/job-bin/start', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
    });
    await expectError(r, 503, 'FIT_JOBS_UNAVAILABLE');
    expect(await listing(dir)).toEqual(before);
  });

  it('the OpenAPI document lists the fit routes', async () => {
    const doc = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/fit-jobs',
        '/v1/fit-jobs/{id}',
        '/v1/fit-jobs/{id}/observations',
        '/v1/fit-jobs/{id}/start',
      ]),
    );
  });
});
