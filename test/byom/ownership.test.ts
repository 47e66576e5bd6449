import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { parseValueApiEnv } from '../../functions/value-api/config.js';
import { parseSettings } from '../../lib/settings.js';
import { inProcessFitLauncher } from '../../shared/adapters/fit-launcher.worker-thread.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { checkpointKey } from '../../shared/storage/layout.js';
import { useTestBackend } from '../helpers/backend.js';
import { makeCheckpoint } from '../helpers/make-checkpoint.js';
import { expectError, type Json, listing } from './api-fixtures.js';
import { makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

/**
 * Issue 23, item 1: a value function id belongs to the principal that created it; a fit job
 * publishes only to an id it owns (or a new one) with the same d, metric and direction; keys
 * carry scopes (read: value functions; write: fit jobs).
 */

const KEYS = {
  alice: 'mo_test_alice_0123456789abcdef0123456789',
  mallory: 'mo_test_mallory_0123456789abcdef012345678',
  reader: 'mo_test_reader_0123456789abcdef0123456789',
  writer: 'mo_test_writer_0123456789abcdef0123456789',
};
const lines4 = recordTrajectories(makeWorld(4, 9), { trajectories: 6, steps: 6, K: 3, seed: 4 });
const lines5 = recordTrajectories(makeWorld(5, 9), { trajectories: 6, steps: 6, K: 3, seed: 4 });

let dir: string;
let store: FsObjectStore;
let launcher: ReturnType<typeof inProcessFitLauncher>;
let app: ReturnType<typeof buildValueApi>['app'];

const as = (who: keyof typeof KEYS) => ({ authorization: `Bearer ${KEYS[who]}` });
const post = (who: keyof typeof KEYS, path: string, body: string, type = 'application/json') =>
  app.request(path, { method: 'POST', headers: { 'content-type': type, ...as(who) }, body });
const get = (who: keyof typeof KEYS, path: string) => app.request(path, { headers: as(who) });
const createBody = (id: string, valueFunctionId: string, direction = 'minimize') =>
  JSON.stringify({
    id,
    metric: { name: 'bowl', direction },
    overrides: { metaTrain: { ensemble: 1, train: { epochs: 2 } } },
    output: { valueFunctionId },
  });

beforeAll(async () => {
  await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-owner-'));
  store = new FsObjectStore(dir);
  // A value function trained by the operator (metricopt train / npm start), not through the API.
  const tuned = makeCheckpoint({ id: 'a9a-mcr-tuned', d: 8, metric: { name: 'mcr', direction: 'minimize' } });
  await store.put(checkpointKey('a9a-mcr-tuned', 1), JSON.stringify(tuned));
  launcher = inProcessFitLauncher(store, () => undefined);
  app = buildValueApi({
    store,
    auth: {
      mode: 'api-key',
      hashes: [
        hashApiKey(KEYS.alice),
        hashApiKey(KEYS.mallory),
        `${hashApiKey(KEYS.reader)}:read`,
        `${hashApiKey(KEYS.writer)}:write`,
      ],
    },
    maxBodyBytes: 64 * 1024,
    maxRows: 64,
    refreshMs: 0,
    fitLauncher: launcher,
    log: () => undefined,
  }).app;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('value-function ownership', () => {
  it('refuses a fit job that would publish over a value function the caller does not own (the hijack), storing nothing', async () => {
    const before = await listing(dir);
    await expectError(
      await post('mallory', '/v1/fit-jobs', createBody('hijack', 'a9a-mcr-tuned')),
      409,
      'VALUE_FUNCTION_OWNED',
    );
    expect(await listing(dir)).toEqual(before);
    const vf = (await (await get('reader', '/v1/value-functions/a9a-mcr-tuned')).json()) as Json;
    expect(vf).toMatchObject({ latest: 1, d: 8 });
  });

  it('gives a new id to the principal that created it; another principal gets 409 and cannot see its jobs', async () => {
    expect((await post('alice', '/v1/fit-jobs', createBody('alice-1', 'alice-vf'))).status).toBe(201);
    await expectError(
      await post('mallory', '/v1/fit-jobs', createBody('mallory-1', 'alice-vf')),
      409,
      'VALUE_FUNCTION_OWNED',
    );
    // Mallory cannot read, feed or start Alice's job, nor create one under its id.
    await expectError(await get('mallory', '/v1/fit-jobs/alice-1'), 404, 'JOB_NOT_FOUND');
    await expectError(
      await post('mallory', '/v1/fit-jobs/alice-1/observations', toJsonLines(lines5), 'application/x-ndjson'),
      404,
      'JOB_NOT_FOUND',
    );
    await expectError(await post('mallory', '/v1/fit-jobs/alice-1/start', '{}'), 404, 'JOB_NOT_FOUND');
    await expectError(
      await post('mallory', '/v1/fit-jobs', createBody('alice-1', 'alice-vf')),
      409,
      'VALUE_FUNCTION_OWNED',
    );
    await expectError(
      await post('mallory', '/v1/fit-jobs', createBody('alice-1', 'mallory-vf')),
      409,
      'JOB_SPEC_MISMATCH',
    );
  });

  it('publishes a new version of an owned id only with the same d, metric and direction', async () => {
    const up = await post('alice', '/v1/fit-jobs/alice-1/observations', toJsonLines(lines4), 'application/x-ndjson');
    expect(up.status).toBe(200);
    expect((await post('alice', '/v1/fit-jobs/alice-1/start', '{}')).status).toBe(202);
    await launcher.idle();
    const done = (await (await get('alice', '/v1/fit-jobs/alice-1')).json()) as Json;
    expect(done).toMatchObject({ state: 'done', status: { valueFunction: { id: 'alice-vf', version: 1 } } });

    // Another direction: refused when the job is created.
    await expectError(
      await post('alice', '/v1/fit-jobs', createBody('alice-2', 'alice-vf', 'maximize')),
      409,
      'VALUE_FUNCTION_MISMATCH',
    );
    // Another d: refused when the job starts, and nothing is published.
    expect((await post('alice', '/v1/fit-jobs', createBody('alice-3', 'alice-vf'))).status).toBe(201);
    await post('alice', '/v1/fit-jobs/alice-3/observations', toJsonLines(lines5), 'application/x-ndjson');
    await expectError(await post('alice', '/v1/fit-jobs/alice-3/start', '{}'), 409, 'VALUE_FUNCTION_MISMATCH');
    // The same d: version 2.
    expect((await post('alice', '/v1/fit-jobs', createBody('alice-4', 'alice-vf'))).status).toBe(201);
    await post('alice', '/v1/fit-jobs/alice-4/observations', toJsonLines(lines4), 'application/x-ndjson');
    expect((await post('alice', '/v1/fit-jobs/alice-4/start', '{}')).status).toBe(202);
    await launcher.idle();
    const vf = (await (await get('alice', '/v1/value-functions/alice-vf')).json()) as Json;
    expect(vf).toMatchObject({ latest: 2, d: 4 });
  });
});

describe('API key scopes', () => {
  it('a read key may predict but not create fit jobs (403 INSUFFICIENT_SCOPE)', async () => {
    const phi = JSON.stringify({ phi: [Array.from({ length: 8 }, () => 0.1)] });
    expect((await post('reader', '/v1/value-functions/a9a-mcr-tuned/predict', phi)).status).toBe(200);
    await expectError(
      await post('reader', '/v1/fit-jobs', createBody('reader-1', 'reader-vf')),
      403,
      'INSUFFICIENT_SCOPE',
    );
  });

  it('a write key may run fit jobs but not read value functions', async () => {
    expect((await post('writer', '/v1/fit-jobs', createBody('writer-1', 'writer-vf'))).status).toBe(201);
    await expectError(await get('writer', '/v1/value-functions'), 403, 'INSUFFICIENT_SCOPE');
    await expectError(
      await post('writer', '/v1/value-functions/a9a-mcr-tuned/guide', JSON.stringify({ phi: [0] })),
      403,
      'INSUFFICIENT_SCOPE',
    );
  });

  it('the Node fast lane applies the same scopes to predict', async () => {
    let server: RunningServer | undefined;
    try {
      server = await startValueApiServer({
        store,
        port: 0,
        auth: { mode: 'api-key', hashes: [`${hashApiKey(KEYS.reader)}:read`, `${hashApiKey(KEYS.writer)}:write`] },
        maxBodyBytes: 64 * 1024,
        maxRows: 64,
        refreshMs: 0,
        log: () => undefined,
      });
      const body = JSON.stringify({ phi: [Array.from({ length: 8 }, () => 0.1)] });
      const call = (who: 'reader' | 'writer') =>
        fetch(`${server?.url}/v1/value-functions/a9a-mcr-tuned/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...as(who) },
          body,
        });
      expect((await call('reader')).status).toBe(200);
      await expectError(await call('writer'), 403, 'INSUFFICIENT_SCOPE');
    } finally {
      await server?.close();
    }
  });

  it('the Lambda environment and the CDK settings take scoped keys and refuse an unknown scope', () => {
    const h = hashApiKey(KEYS.reader);
    const w = hashApiKey(KEYS.writer);
    const env = parseValueApiEnv({ METRICOPT_STORE: '/tmp/x', METRICOPT_API_KEY_HASHES: `${h}:read,${w}:write` });
    expect(env.METRICOPT_API_KEY_HASHES).toEqual([`${h}:read`, `${w}:write`]);
    // The CDK settings take the same entries.
    expect(parseSettings({ valueApiKeyHashes: `${h}:read,${w}` }, process.cwd()).valueApiKeyHashes).toEqual([
      `${h}:read`,
      w,
    ]);
    expect(() => parseSettings({ valueApiKeyHashes: `${h}:admin` }, process.cwd())).toThrow(/valueApiKeyHashes/);
    expect(() => parseValueApiEnv({ METRICOPT_STORE: '/tmp/x', METRICOPT_API_KEY_HASHES: `${h}:admin` })).toThrow(
      /METRICOPT_API_KEY_HASHES/,
    );
  });
});
