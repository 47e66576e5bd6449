import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildValueApi } from '../../functions/value-api/service.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { parseObservationText } from '../../shared/use-cases/byom/observation-batches.js';

/**
 * Issue 23, item 5: the NDJSON route bounds nesting and line size like the JSON routes; every
 * POST needs its documented Content-Type; no server path in a client error; temporary files of
 * a killed writer are cleaned when the store is opened for serving.
 */
type Json = { error?: { code: string; message: string; details?: { issues?: { reason: string }[] } } };
let dir: string;
let store: FsObjectStore;
let app: ReturnType<typeof buildValueApi>['app'];

const post = (path: string, body: string, type?: string) =>
  app.request(path, { method: 'POST', body, ...(type === undefined ? {} : { headers: { 'content-type': type } }) });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-hostile-'));
  store = new FsObjectStore(dir);
  app = buildValueApi({
    store,
    auth: { mode: 'none' },
    maxBodyBytes: 8 * 1024 * 1024,
    maxRows: 64,
    refreshMs: 0,
    fitLauncher: { via: 'in-process', launch: async () => undefined },
    log: () => undefined,
  }).app;
  const create = JSON.stringify({
    id: 'hostile',
    metric: { name: 'bowl', direction: 'minimize' },
    output: { valueFunctionId: 'hostile-vf' },
  });
  expect((await post('/v1/fit-jobs', create, 'application/json')).status).toBe(201);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('hostile input on the fit routes', () => {
  it('refuses a line nested deeper than an observation before parsing it (400), storing nothing', async () => {
    const depth = 50_000; // 100,000 characters: under the line limit, so the nesting bound answers
    const line = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const r = await post('/v1/fit-jobs/hostile/observations', `${line}\n`, 'application/x-ndjson');
    const body = (await r.json()) as Json;
    expect({ status: r.status, code: body.error?.code }).toEqual({ status: 400, code: 'OBSERVATIONS_INVALID' });
    expect(body.error?.details?.issues?.[0]?.reason).toMatch(/nested/);
    expect(await store.list('jobs/hostile/observations/')).toEqual([]);
  });

  it('refuses a line longer than any observation line can be', () => {
    const line = JSON.stringify({ trajectory: 'a', step: 0, phi: [0], metric: 0, pad: 'x'.repeat(300_000) });
    const r = parseObservationText(line, 'obs');
    expect(!r.ok && r.error.message).toMatch(/line 1: .*longer than/);
  });

  it('needs application/json to start or cancel a job (415) and changes nothing', async () => {
    for (const op of ['start', 'cancel']) {
      for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded']) {
        const r = await post(`/v1/fit-jobs/hostile/${op}`, '{}', type);
        expect({ op, type, status: r.status }).toEqual({ op, type, status: 415 });
      }
    }
    expect(await store.list('jobs/hostile/')).toEqual(['jobs/hostile/job.json', 'jobs/hostile/owner.json']);
  });

  it('names no server path in errors', async () => {
    const r = await app.request('/v1/fit-jobs/no-such-job');
    const body = (await r.json()) as Json;
    expect(r.status).toBe(404);
    expect(body.error?.message).not.toContain(dir);
    expect(body.error?.message).not.toMatch(/file:\/\//);
    const mismatch = await post(
      '/v1/fit-jobs',
      JSON.stringify({
        id: 'hostile',
        metric: { name: 'bowl', direction: 'minimize' },
        seed: 9,
        output: { valueFunctionId: 'hostile-vf' },
      }),
      'application/json',
    );
    const m = (await mismatch.json()) as Json;
    expect(m.error?.code).toBe('JOB_SPEC_MISMATCH');
    expect(m.error?.message).not.toMatch(/file:\/\//);
  });
});

describe('FsObjectStore.removeTemporaryFiles', () => {
  it('removes the temporary files of a writer that was killed, and nothing else', async () => {
    const d = await mkdtemp(join(tmpdir(), 'mo-tmp-clean-'));
    const s = new FsObjectStore(d);
    await s.put('jobs/a/observations/00000001.jsonl', '{}\n');
    await writeFile(join(d, 'jobs/a/observations/00000002.jsonl.tmp-123-abc'), 'half');
    await writeFile(join(d, 'jobs/a/status.json.tmp-9-x'), 'half');
    expect(await s.removeTemporaryFiles()).toBe(2);
    expect((await readdir(join(d, 'jobs/a/observations'))).sort()).toEqual(['00000001.jsonl']);
    expect(await s.list('')).toEqual(['jobs/a/observations/00000001.jsonl']);
    await rm(d, { recursive: true, force: true });
  });
});
