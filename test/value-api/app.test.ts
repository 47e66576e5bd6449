import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { guidedEsDirection } from '../../shared/method/guided-es.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { checkpointKey } from '../../shared/storage/layout.js';
import { saveCheckpoint } from '../../shared/storage/value-function-store.js';
import { Rng } from '../../shared/util/random.js';
import { makeCheckpoint } from '../helpers/make-checkpoint.js';
import { SECRET_KEY, tempStore } from './fixtures.js';

type Json = Record<string, unknown> & { error?: { code: string; message: string; details?: unknown } };

let fixture: Awaited<ReturnType<typeof tempStore>>;
let app: ReturnType<typeof buildValueApi>['app'];
let f1: ValueFunctionCheckpoint;
let wide: ValueFunctionCheckpoint;
const logged: Record<string, unknown>[] = [];

function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function json(res: Response): Promise<Json> {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return (await res.json()) as Json;
}

async function expectError(res: Response | Promise<Response>, status: number, code: string): Promise<string> {
  const r = await res;
  const body = await json(r);
  expect({ status: r.status, code: body.error?.code }).toEqual({ status, code });
  expect(typeof body.error?.message).toBe('string');
  return body.error?.message as string;
}

function phiOf(d: number, seed: number): number[] {
  return Array.from(new Rng(seed).normals(d));
}

beforeAll(async () => {
  fixture = await tempStore([
    { id: 'a9a-f1', d: 16, seed: 1, metric: { name: 'f1', direction: 'maximize' } },
    { id: 'wide', d: 128, seed: 2, members: 3, metric: { name: 'mcr', direction: 'minimize' } },
  ]);
  [f1, wide] = fixture.saved as [ValueFunctionCheckpoint, ValueFunctionCheckpoint];
  app = buildValueApi({
    store: fixture.store,
    auth: { mode: 'none' },
    maxBodyBytes: 64 * 1024,
    maxRows: 8,
    refreshMs: 0,
    log: (e) => logged.push(e),
  }).app;
});

afterAll(async () => {
  await fixture.cleanup();
});

describe('GET /healthz and /openapi.json', () => {
  it('answers ok', async () => {
    const res = await app.request('/healthz');
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: 'ok', version: expect.any(String) });
  });

  it('documents every route with schemas generated from zod', async () => {
    const doc = await json(await app.request('/openapi.json'));
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths as object).sort()).toEqual([
      '/healthz',
      '/v1/fit-jobs',
      '/v1/fit-jobs/{id}',
      '/v1/fit-jobs/{id}/cancel',
      '/v1/fit-jobs/{id}/labels',
      '/v1/fit-jobs/{id}/observations',
      '/v1/fit-jobs/{id}/predictions/{key}',
      '/v1/fit-jobs/{id}/start',
      '/v1/jobs/{id}',
      '/v1/value-functions',
      '/v1/value-functions/{id}',
      '/v1/value-functions/{id}/gradient',
      '/v1/value-functions/{id}/guide',
      '/v1/value-functions/{id}/predict',
    ]);
    const schemas = (doc.components as { schemas: Record<string, { properties?: Record<string, unknown> }> }).schemas;
    expect(Object.keys(schemas)).toEqual(
      expect.arrayContaining(['PredictRequest', 'GradientResponse', 'GuideRequest', 'Error', 'ValueFunctionList']),
    );
    expect(Object.keys(schemas.GuideRequest?.properties ?? {})).toEqual([
      'phi',
      'lossGradients',
      'P',
      'sigma2',
      'seed',
    ]);
  });
});

describe('GET /v1/value-functions', () => {
  it('lists ids, versions, d, metric and training stats', async () => {
    const body = await json(await app.request('/v1/value-functions'));
    const list = body.valueFunctions as Array<Record<string, unknown>>;
    expect(list.map((v) => [v.id, v.versions, v.d, v.metric])).toEqual([
      ['a9a-f1', [1], 16, { name: 'f1', direction: 'maximize' }],
      ['wide', [1], 128, { name: 'mcr', direction: 'minimize' }],
    ]);
    expect(list[0]?.training).toEqual(f1.training);
  });

  it('describes one value function', async () => {
    const body = await json(await app.request('/v1/value-functions/wide'));
    expect(body).toMatchObject({ id: 'wide', latest: 1, d: 128, members: 3, training: wide.training });
  });

  it('answers 404 VALUE_FUNCTION_NOT_FOUND for an unknown id', async () => {
    const message = await expectError(app.request('/v1/value-functions/nope'), 404, 'VALUE_FUNCTION_NOT_FOUND');
    expect(message).toBe("value function 'nope' not found");
  });
});

describe('POST /v1/value-functions/{id}/predict', () => {
  it('returns natural-direction estimates and the normalised values of the compiled checkpoint', async () => {
    const compiled = new CompiledValueFunction(f1);
    const phi = phiOf(16, 3);
    const body = await json(await post('/v1/value-functions/a9a-f1/predict', { phi }));
    const expected = compiled.value(Float32Array.from(phi));
    expect(body.version).toBe(1);
    expect(body.metric).toEqual({ name: 'f1', direction: 'maximize' });
    expect((body.normalised as number[])[0]).toBeCloseTo(expected, 6);
    expect((body.values as number[])[0]).toBeCloseTo(1 - expected, 6);
  });

  it('answers a batch with one value per row, equal to single-row answers', async () => {
    const rows = [phiOf(16, 4), phiOf(16, 5), phiOf(16, 6)];
    const batch = await json(await post('/v1/value-functions/a9a-f1/predict', { phi: rows }));
    const singles = await Promise.all(
      rows.map(async (phi) => json(await post('/v1/value-functions/a9a-f1/predict', { phi }))),
    );
    expect(batch.values).toEqual(singles.map((s) => (s.values as number[])[0]));
  });

  it('reports minimize metrics unchanged (values = normalised)', async () => {
    const body = await json(await post('/v1/value-functions/wide/predict', { phi: phiOf(128, 7) }));
    expect(body.values).toEqual(body.normalised);
  });
});

describe('POST /v1/value-functions/{id}/gradient', () => {
  it('returns d(normalised)/d(phi) that matches central finite differences', async () => {
    const phi = phiOf(16, 8);
    const body = await json(await post('/v1/value-functions/a9a-f1/gradient', { phi }));
    const gradient = (body.gradients as number[][])[0] as number[];
    const compiled = new CompiledValueFunction(f1);
    const h = 1e-3;
    for (let i = 0; i < 16; i++) {
      const plus = Float32Array.from(phi);
      const minus = Float32Array.from(phi);
      plus[i] = (plus[i] as number) + h;
      minus[i] = (minus[i] as number) - h;
      const fd = (compiled.value(plus) - compiled.value(minus)) / (2 * h);
      expect(Math.abs((gradient[i] as number) - fd)).toBeLessThan(2e-3 * Math.max(1, Math.abs(fd)));
    }
  });

  it('returns one gradient row per batch row', async () => {
    const rows = [phiOf(128, 9), phiOf(128, 10)];
    const body = await json(await post('/v1/value-functions/wide/gradient', { phi: rows }));
    const compiled = new CompiledValueFunction(wide);
    const g = new Float32Array(128);
    for (const [r, row] of rows.entries()) {
      compiled.valueAndGradient(Float32Array.from(row), g);
      // JSON carries the float32 gradients with the 9 digits that identify each float32.
      expect(Float32Array.from((body.gradients as number[][])[r] as number[])).toEqual(g);
    }
  });
});

describe('POST /v1/value-functions/{id}/guide', () => {
  it('returns the Guided-ES direction of Eq. 3-4 for the given seed', async () => {
    const phi = phiOf(16, 11);
    const lossGradients = [phiOf(16, 12), phiOf(16, 13), phiOf(16, 14)];
    const body = await json(await post('/v1/value-functions/a9a-f1/guide', { phi, lossGradients, seed: 42, P: 5 }));
    const compiled = new CompiledValueFunction(f1);
    const expected = guidedEsDirection(
      (x) => compiled.value(x),
      Float32Array.from(phi),
      lossGradients.map((g) => Float32Array.from(g)),
      { P: 5, sigma2: 0.01 },
      new Rng(42),
    );
    expect(body).toMatchObject({ version: 1, P: 5, sigma2: 0.01, seed: 42 });
    expect(Float32Array.from(body.direction as number[])).toEqual(expected);
    expect(body.normalised).toBeCloseTo(compiled.value(Float32Array.from(phi)), 6);
    expect(body.value).toBeCloseTo(1 - (body.normalised as number), 9);
  });

  it('picks and returns a seed when none is given, and accepts no loss gradients', async () => {
    const body = await json(await post('/v1/value-functions/a9a-f1/guide', { phi: phiOf(16, 15), lossGradients: [] }));
    expect(body).toMatchObject({ P: 3, sigma2: 0.01, seed: expect.any(Number) });
    expect((body.direction as number[]).length).toBe(16);
  });

  it('names the loss gradient with the wrong dimension', async () => {
    const message = await expectError(
      post('/v1/value-functions/a9a-f1/guide', { phi: phiOf(16, 1), lossGradients: [phiOf(16, 2), phiOf(15, 3)] }),
      400,
      'DIMENSION_MISMATCH',
    );
    expect(message).toBe("guide: lossGradients[1] has 15 entries, value function 'a9a-f1' expects 16");
  });

  it('rejects more than 16 loss gradients and a non-integer P', async () => {
    const lossGradients = Array.from({ length: 17 }, (_, i) => phiOf(16, i));
    await expectError(
      post('/v1/value-functions/a9a-f1/guide', { phi: phiOf(16, 1), lossGradients }),
      400,
      'INVALID_BODY',
    );
    await expectError(
      post('/v1/value-functions/a9a-f1/guide', { phi: phiOf(16, 1), lossGradients: [], P: 1.5 }),
      400,
      'INVALID_BODY',
    );
  });
});

describe('binary predict and gradient', () => {
  const binary = (path: string, data: Float32Array | Uint8Array) =>
    app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });

  it('answers n values then n x d gradient entries as little-endian float32, version in a header', async () => {
    const rows = [phiOf(128, 20), phiOf(128, 21)];
    const res = await binary('/v1/value-functions/wide/gradient', Float32Array.from(rows.flat()));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('x-value-function-version')).toBe('1');
    const out = new Float32Array(await res.arrayBuffer());
    const viaJson = await json(await post('/v1/value-functions/wide/gradient', { phi: rows }));
    expect(out.length).toBe(2 + 2 * 128);
    expect(Array.from(out.subarray(0, 2))).toEqual((viaJson.values as number[]).map(Math.fround));
    expect(Array.from(out.subarray(2))).toEqual((viaJson.gradients as number[][]).flat().map(Math.fround));
  });

  it('answers predict with n float32 values in the natural direction', async () => {
    const phi = phiOf(16, 22);
    const out = new Float32Array(
      await (await binary('/v1/value-functions/a9a-f1/predict', Float32Array.from(phi))).arrayBuffer(),
    );
    const viaJson = await json(await post('/v1/value-functions/a9a-f1/predict', { phi }));
    expect(out.length).toBe(1);
    expect(out[0]).toBeCloseTo((viaJson.values as number[])[0] as number, 6);
  });

  it('answers malformed sizes and non-finite values with JSON errors', async () => {
    expect(
      await expectError(binary('/v1/value-functions/a9a-f1/predict', new Uint8Array(63)), 400, 'DIMENSION_MISMATCH'),
    ).toBe('predict: body has 63 bytes, not a whole number of float32 values (4 bytes each)');
    expect(
      await expectError(binary('/v1/value-functions/a9a-f1/gradient', new Float32Array(17)), 400, 'DIMENSION_MISMATCH'),
    ).toBe("gradient: body has 17 float32 values, not a multiple of d = 16 of value function 'a9a-f1'");
    await expectError(binary('/v1/value-functions/a9a-f1/gradient', new Uint8Array(0)), 400, 'EMPTY_BATCH');
    const nan = new Float32Array(16);
    nan[3] = Number.NaN;
    expect(await expectError(binary('/v1/value-functions/a9a-f1/gradient', nan), 400, 'NOT_FINITE')).toBe(
      'gradient: phi[0][3] is NaN',
    );
    await expectError(binary('/v1/value-functions/a9a-f1/gradient', new Float32Array(16 * 9)), 413, 'TOO_MANY_ROWS');
  });
});

describe('versions', () => {
  it('serves a newly written version without a restart, and pins older ones with ?version=', async () => {
    const phi = phiOf(16, 30);
    const before = await json(await post('/v1/value-functions/a9a-f1/predict', { phi }));
    const { version: _, ...next } = makeCheckpoint({ id: 'a9a-f1', d: 16, seed: 99 });
    await saveCheckpoint(fixture.store, next);
    let latest = before;
    for (let i = 0; i < 50 && latest.version !== 2; i++) {
      await new Promise((r) => setTimeout(r, 10));
      latest = await json(await post('/v1/value-functions/a9a-f1/predict', { phi }));
    }
    expect(latest.version).toBe(2);
    expect(latest.values).not.toEqual(before.values);
    const pinned = await json(await post('/v1/value-functions/a9a-f1/predict?version=1', { phi }));
    expect(pinned).toEqual(before);
    const listed = await json(await app.request('/v1/value-functions/a9a-f1'));
    expect(listed).toMatchObject({ versions: [1, 2], latest: 2 });
  });

  it('answers 404 VERSION_NOT_FOUND for a missing version and 400 for a malformed one', async () => {
    const message = await expectError(
      post('/v1/value-functions/wide/predict?version=9', { phi: phiOf(128, 1) }),
      404,
      'VERSION_NOT_FOUND',
    );
    expect(message).toBe("value function 'wide' has no version 9 (versions: 1)");
    await expectError(
      post('/v1/value-functions/wide/predict?version=abc', { phi: phiOf(128, 1) }),
      400,
      'INVALID_QUERY',
    );
    await expectError(post('/v1/value-functions/wide/predict?version=0', { phi: phiOf(128, 1) }), 400, 'INVALID_QUERY');
  });
});

describe('request errors', () => {
  it('answers 400 INVALID_JSON for malformed JSON and invalid UTF-8', async () => {
    await expectError(post('/v1/value-functions/a9a-f1/predict', '{"phi": [1, 2'), 400, 'INVALID_JSON');
    const res = await app.request('/v1/value-functions/a9a-f1/predict', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    });
    expect(await expectError(res, 400, 'INVALID_JSON')).toBe('request body is not valid UTF-8');
  });

  it('names the dimension mismatch', async () => {
    expect(
      await expectError(post('/v1/value-functions/a9a-f1/predict', { phi: phiOf(17, 1) }), 400, 'DIMENSION_MISMATCH'),
    ).toBe("predict: phi has 17 entries, value function 'a9a-f1' expects 16");
    expect(
      await expectError(
        post('/v1/value-functions/a9a-f1/gradient', { phi: [phiOf(16, 1), phiOf(15, 2)] }),
        400,
        'DIMENSION_MISMATCH',
      ),
    ).toBe("gradient: phi[1] has 15 entries, value function 'a9a-f1' expects 16");
  });

  it('rejects NaN and Infinity in every spelling', async () => {
    const phi = phiOf(16, 1);
    await expectError(
      post('/v1/value-functions/a9a-f1/predict', `{"phi":[NaN${',0'.repeat(15)}]}`),
      400,
      'INVALID_JSON',
    );
    await expectError(
      post('/v1/value-functions/a9a-f1/predict', { phi: ['NaN', ...phi.slice(1)] }),
      400,
      'INVALID_BODY',
    );
    expect(
      await expectError(
        post('/v1/value-functions/a9a-f1/predict', `{"phi":[0,1e309${',0'.repeat(14)}]}`),
        400,
        'NOT_FINITE',
      ),
    ).toBe('predict: phi[1] is Infinity (a number beyond the float range, such as 1e309)');
    expect(
      await expectError(
        post('/v1/value-functions/a9a-f1/gradient', `{"phi":[[${'0,'.repeat(15)}0],[-1e400${',0'.repeat(15)}]]}`),
        400,
        'NOT_FINITE',
      ),
    ).toBe('gradient: phi[1][0] is -Infinity (a number beyond the float range, such as 1e309)');
    expect(
      await expectError(
        post('/v1/value-functions/a9a-f1/guide', `{"phi":[1e999${',0'.repeat(15)}],"lossGradients":[]}`),
        400,
        'NOT_FINITE',
      ),
    ).toBe('guide: phi[0] is Infinity (a number beyond the float range, such as 1e309)');
    expect(
      await expectError(
        post('/v1/value-functions/a9a-f1/predict', `{"phi":[1e39${',0'.repeat(15)}]}`),
        400,
        'NOT_FINITE',
      ),
    ).toBe('predict: phi[0] = 1e+39 is not a finite float32');
  });

  it('answers 400 EMPTY_BATCH for an empty phi', async () => {
    expect(await expectError(post('/v1/value-functions/a9a-f1/predict', { phi: [] }), 400, 'EMPTY_BATCH')).toBe(
      'predict: phi is empty',
    );
  });

  it('answers 400 INVALID_BODY for a missing or mistyped phi, naming the path', async () => {
    const message = await expectError(post('/v1/value-functions/a9a-f1/predict', { phi: 'x' }), 400, 'INVALID_BODY');
    expect(message).toMatch(/^predict: invalid body at 'phi'/);
    await expectError(post('/v1/value-functions/a9a-f1/predict', { nope: 1 }), 400, 'INVALID_BODY');
    await expectError(post('/v1/value-functions/a9a-f1/predict', '[]'), 400, 'INVALID_BODY');
  });

  it('names only the first wrongly typed element of a long phi (bounded work for hostile bodies)', async () => {
    const hostile = `{"phi":[1,2${',"x"'.repeat(12_000)}]}`;
    expect(hostile.length).toBeLessThan(64 * 1024);
    const res = await post('/v1/value-functions/a9a-f1/predict', hostile);
    const body = await json(res);
    expect(res.status).toBe(400);
    expect(body.error).toEqual({
      code: 'INVALID_BODY',
      message: "predict: invalid body at 'phi.2': expected a number, got string",
      details: { issues: [{ path: 'phi.2', message: 'expected a number, got string' }] },
    });
    const objects = `{"phi":[{}${',null'.repeat(10_000)}]}`;
    expect(await expectError(post('/v1/value-functions/a9a-f1/predict', objects), 400, 'INVALID_BODY')).toBe(
      "predict: invalid body at 'phi.0': expected a number or an array of numbers, got an object",
    );
    const rows = `{"phi":[[${'0,'.repeat(15)}0],[0,"x",{}]${',true'.repeat(10_000)}]}`;
    expect(await expectError(post('/v1/value-functions/a9a-f1/gradient', rows), 400, 'INVALID_BODY')).toBe(
      "gradient: invalid body at 'phi.1.1': expected a number, got string",
    );
    const guide = `{"phi":[${'0,'.repeat(15)}0],"lossGradients":[[1,2],[3,null${',"a"'.repeat(10_000)}]]}`;
    expect(await expectError(post('/v1/value-functions/a9a-f1/guide', guide), 400, 'INVALID_BODY')).toBe(
      "guide: invalid body at 'lossGradients.1.1': expected a number, got null",
    );
  });

  it('answers INVALID_BODY before parsing a body of more arrays and objects than rows allow', async () => {
    // maxRows is 8 here: 8 + 64 containers at most.
    const hostile = `{"phi":[${'{},'.repeat(100)}{}]}`;
    const res = await post('/v1/value-functions/a9a-f1/predict', hostile);
    expect(await json(res)).toEqual({
      error: {
        code: 'INVALID_BODY',
        message: 'predict: invalid body: more than 72 arrays and objects (one array per row is expected)',
        details: { maxContainers: 72 },
      },
    });
    expect(res.status).toBe(400);
    const nested = `{"phi":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    await expectError(post('/v1/value-functions/a9a-f1/gradient', nested), 400, 'INVALID_BODY');
    const guide = `{"phi":[1],"lossGradients":[${'[],'.repeat(64)}[]]}`;
    expect(await expectError(post('/v1/value-functions/a9a-f1/guide', guide), 400, 'INVALID_BODY')).toBe(
      'guide: invalid body: more than 64 arrays and objects (one array per row is expected)',
    );
    // Brackets inside strings are not containers; invalid UTF-8 is still INVALID_JSON.
    const quoted = JSON.stringify({ phi: phiOf(16, 1), note: `${'[{'.repeat(500)}\\"` });
    expect((await post('/v1/value-functions/a9a-f1/predict', quoted)).status).toBe(200);
  });

  it('answers 413 for a body over the limit and for too many rows', async () => {
    const huge = JSON.stringify({ phi: Array.from({ length: 8000 }, () => 0.123456789) });
    expect(huge.length).toBeGreaterThan(64 * 1024);
    await expectError(post('/v1/value-functions/a9a-f1/predict', huge), 413, 'PAYLOAD_TOO_LARGE');
    const rows = Array.from({ length: 9 }, (_, i) => phiOf(16, i));
    expect(await expectError(post('/v1/value-functions/a9a-f1/predict', { phi: rows }), 413, 'TOO_MANY_ROWS')).toBe(
      'predict: batch has 9 rows, at most 8 are allowed',
    );
  });

  it('answers 415 for an unsupported content type and 404 for unknown routes', async () => {
    await expectError(
      post('/v1/value-functions/a9a-f1/predict', '{}', { 'content-type': 'text/plain' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await expectError(app.request('/v2/nothing'), 404, 'NOT_FOUND');
    await expectError(post('/v1/value-functions/nope/gradient', { phi: [1] }), 404, 'VALUE_FUNCTION_NOT_FOUND');
  });
});

describe('auth', () => {
  const keyed = () =>
    buildValueApi({
      store: fixture.store,
      auth: { mode: 'api-key', hashes: [hashApiKey(SECRET_KEY)] },
      maxBodyBytes: 1 << 20,
      maxRows: 8,
      refreshMs: 1000,
    }).app;

  it('answers 401 without a key or with a wrong one, and serves a valid key', async () => {
    const api = keyed();
    const message = await expectError(api.request('/v1/value-functions'), 401, 'UNAUTHORIZED');
    expect(message).toMatch(/API key/);
    expect((await api.request('/v1/value-functions')).headers.get('www-authenticate')).toBe('Bearer');
    await expectError(
      api.request('/v1/value-functions', { headers: { authorization: 'Bearer wrong' } }),
      401,
      'UNAUTHORIZED',
    );
    await expectError(
      api.request('/v1/value-functions', { headers: { authorization: SECRET_KEY } }),
      401,
      'UNAUTHORIZED',
    );
    const ok = await api.request('/v1/value-functions', { headers: { authorization: `Bearer ${SECRET_KEY}` } });
    expect(ok.status).toBe(200);
  });

  it('keeps /healthz and /openapi.json public', async () => {
    const api = keyed();
    expect((await api.request('/healthz')).status).toBe(200);
    expect((await api.request('/openapi.json')).status).toBe(200);
  });

  it('answers an unknown path 404 and an undeclared method 405 with or without a key', async () => {
    const api = keyed();
    await expectError(api.request('/v1/nope', { method: 'POST', body: '{}' }), 404, 'NOT_FOUND');
    await expectError(api.request('/v1/value-functions/a9a-f1/predict'), 405, 'METHOD_NOT_ALLOWED');
    const key = { authorization: `Bearer ${SECRET_KEY}` };
    await expectError(api.request('/v1/nope', { headers: key }), 404, 'NOT_FOUND');
    await expectError(api.request('/v1/fit-jobs', { headers: key }), 405, 'METHOD_NOT_ALLOWED');
  });

  it('in IAM mode accepts only requests that carry the function URL IAM context', async () => {
    const api = buildValueApi({
      store: fixture.store,
      auth: { mode: 'iam' },
      maxBodyBytes: 1024,
      maxRows: 8,
      refreshMs: 1000,
    }).app;
    await expectError(api.request('/v1/value-functions'), 401, 'UNAUTHORIZED');
    const env = { event: { requestContext: { authorizer: { iam: { userArn: 'arn:aws:iam::123:user/x' } } } } };
    expect((await api.request('/v1/value-functions', {}, env)).status).toBe(200);
  });
});

describe('a bad newest checkpoint version', () => {
  it('serves the last good version, logs the bad one once and shows it in describe and /healthz', async () => {
    const bad = await tempStore([
      { id: 'vf', d: 16, seed: 1 },
      { id: 'vf', d: 16, seed: 2 },
    ]);
    const key = checkpointKey('vf', 2);
    const text = new TextDecoder().decode(await bad.store.get(key));
    await bad.store.put(key, text.slice(0, 100));
    const entries: Record<string, unknown>[] = [];
    const api = buildValueApi({
      store: bad.store,
      auth: { mode: 'none' },
      maxBodyBytes: 64 * 1024,
      maxRows: 8,
      refreshMs: 0,
      log: (e) => entries.push(e),
    }).app;
    const predict = (query = '') =>
      api.request(`/v1/value-functions/vf/predict${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ phi: phiOf(16, 1) }),
      });
    for (let i = 0; i < 10; i++) {
      const res = await predict();
      expect(res.status).toBe(200);
      expect((await json(res)).version).toBe(1);
    }
    expect(await expectError(predict('?version=2'), 500, 'CHECKPOINT_INVALID')).toMatch(
      /^checkpoint value-functions\/vf\/v000002\.json is not JSON/,
    );
    expect(entries).toEqual([
      expect.objectContaining({ level: 'warn', id: 'vf', version: 2, code: 'CHECKPOINT_INVALID' }),
    ]);
    const described = await json(await api.request('/v1/value-functions/vf'));
    expect(described).toMatchObject({
      versions: [1, 2],
      latest: 2,
      serving: 1,
      invalidVersions: [
        { version: 2, code: 'CHECKPOINT_INVALID', message: expect.any(String), since: expect.any(String) },
      ],
    });
    const health = await json(await api.request('/healthz'));
    expect(health).toEqual({
      status: 'ok',
      version: expect.any(String),
      details: { invalidCheckpoints: [expect.objectContaining({ id: 'vf', version: 2, code: 'CHECKPOINT_INVALID' })] },
    });
    await bad.cleanup();
  });
});

describe('HTTP edge details (issue 10)', () => {
  const raw = (path: string, init: RequestInit) => app.request(path, init);
  const phiBytes = () => Float32Array.from(phiOf(16, 3));

  it('answers 405 with Allow for a declared route and an undeclared method', async () => {
    const get = await raw('/v1/value-functions/a9a-f1/predict', { method: 'GET' });
    expect(await expectError(get, 405, 'METHOD_NOT_ALLOWED')).toBe(
      'GET is not allowed on /v1/value-functions/a9a-f1/predict; use POST',
    );
    expect(get.headers.get('allow')).toBe('POST');
    const del = await raw('/v1/value-functions', { method: 'DELETE' });
    await expectError(del, 405, 'METHOD_NOT_ALLOWED');
    expect(del.headers.get('allow')).toBe('GET, HEAD');
    await expectError(post('/healthz', {}), 405, 'METHOD_NOT_ALLOWED');
    await expectError(app.request('/v1/value-functions/a/b/c'), 404, 'NOT_FOUND');
  });

  it.each(['0x1', '1e0', '+1', ' 1', '1.0', '', '-1', '1%20'])(
    'refuses ?version=%j instead of pinning 1',
    async (v) => {
      await expectError(
        post(`/v1/value-functions/a9a-f1/predict?version=${v}`, { phi: phiOf(16, 1) }),
        400,
        'INVALID_QUERY',
      );
    },
  );

  it('pins with plain decimal digits', async () => {
    expect((await json(await post('/v1/value-functions/wide/predict?version=1', { phi: phiOf(128, 1) }))).version).toBe(
      1,
    );
  });

  it('matches content types exactly, case-insensitively, and requires one', async () => {
    const send = (type: string | undefined, body: string | Uint8Array | Float32Array) =>
      raw('/v1/value-functions/a9a-f1/predict', {
        method: 'POST',
        headers: type === undefined ? {} : { 'content-type': type },
        body,
      });
    await expectError(send('application/octet-streamfoo', phiBytes()), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await expectError(
      send('application/json-seq', JSON.stringify({ phi: phiOf(16, 1) })),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    const upper = await send('Application/Octet-Stream', phiBytes());
    expect([upper.status, upper.headers.get('content-type')]).toEqual([200, 'application/octet-stream']);
    expect((await send('APPLICATION/JSON; charset=UTF-8', JSON.stringify({ phi: phiOf(16, 1) }))).status).toBe(200);
    expect((await send('application/problem+json', JSON.stringify({ phi: phiOf(16, 1) }))).status).toBe(200);
    const none = send(undefined, new TextEncoder().encode(JSON.stringify({ phi: phiOf(16, 1) })));
    expect(await expectError(none, 415, 'UNSUPPORTED_MEDIA_TYPE')).toBe(
      'predict: the request has no Content-Type; send application/json or application/octet-stream',
    );
    const guide = raw('/v1/value-functions/a9a-f1/guide', {
      method: 'POST',
      body: new TextEncoder().encode(JSON.stringify({ phi: phiOf(16, 1), lossGradients: [] })),
    });
    await expectError(guide, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers a client that went away mid-body without logging an unhandled error', async () => {
    // The body stream fails as @hono/node-server's does when the connection resets mid-body.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"phi":['));
        setTimeout(() => controller.error(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })), 5);
      },
    });
    const before = logged.length;
    const res = await app.request('/v1/value-functions/a9a-f1/predict', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit);
    await expectError(res, 400, 'REQUEST_ABORTED');
    expect(logged.slice(before)).toEqual([]);
  });

  it('declares no security in the OpenAPI document when auth is off, bearer or SigV4 when on', async () => {
    type Doc = {
      paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>;
      components: { securitySchemes?: Record<string, unknown>; schemas: Record<string, unknown> };
    };
    const docOf = async (auth: Parameters<typeof buildValueApi>[0]['auth']) =>
      (await (
        await buildValueApi({
          store: fixture.store,
          auth,
          maxBodyBytes: 1024,
          maxRows: 8,
          refreshMs: 1000,
        }).app.request('/openapi.json')
      ).json()) as Doc;
    const off = await docOf({ mode: 'none' });
    const operations = Object.values(off.paths).flatMap((p) => Object.values(p));
    expect(operations.length).toBe(14);
    expect(operations.filter((o) => o.security !== undefined || '401' in o.responses)).toEqual([]);
    expect(off.components.securitySchemes).toBeUndefined();
    const keyed = await docOf({ mode: 'api-key', hashes: [hashApiKey(SECRET_KEY)] });
    expect(keyed.paths['/v1/value-functions/{id}/guide']?.post).toMatchObject({
      security: [{ bearer: [] }],
      responses: { 400: {}, 401: {}, 404: {}, 413: {}, 415: {}, 500: {} },
    });
    expect(keyed.components.securitySchemes).toEqual({ bearer: { type: 'http', scheme: 'bearer' } });
    const iam = await docOf({ mode: 'iam' });
    expect(iam.paths['/v1/value-functions']?.get?.security).toEqual([{ sigv4: [] }]);
    const request = off.components.schemas.PredictRequest as {
      properties: { phi: { anyOf: { minItems?: number }[] } };
    };
    expect(request.properties.phi.anyOf.map((a) => a.minItems)).toEqual([1, 1]);
  });
});

describe('faults', () => {
  it('answers 500 only for a real fault, logged with a request id', async () => {
    const broken: ObjectStore = {
      location: 'broken://',
      put: async () => undefined,
      putIfAbsent: async () => true,
      get: async () => undefined,
      list: async () => {
        throw new Error('disk on fire');
      },
      delete: async () => undefined,
    };
    const api = buildValueApi({
      store: broken,
      auth: { mode: 'none' },
      maxBodyBytes: 1024,
      maxRows: 8,
      refreshMs: 1000,
      log: (e) => logged.push(e),
    }).app;
    const res = await api.request('/v1/value-functions', { headers: { 'x-request-id': 'req-123' } });
    const body = await json(res);
    expect(res.status).toBe(500);
    expect(body.error).toEqual({
      code: 'INTERNAL',
      message: 'internal error; reported with this request id',
      details: { requestId: 'req-123' },
    });
    expect(logged.at(-1)).toMatchObject({ level: 'error', requestId: 'req-123', error: 'disk on fire' });
  });
});
