import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Recorder, ValueApiClient, ValueApiError } from '../../clients/typescript/index.js';
import type { RunningServer } from '../../functions/value-api/node.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { readFitLabels } from '../../shared/use-cases/byom/fit-inputs.js';
import { Rng } from '../../shared/util/random.js';
import { SECRET_KEY, startKeyedServer, tempStore } from './fixtures.js';

let fixture: Awaited<ReturnType<typeof tempStore>>;
let server: RunningServer;
let client: ValueApiClient;
let checkpoint: ValueFunctionCheckpoint;

beforeAll(async () => {
  fixture = await tempStore([{ id: 'client-vf', d: 32, seed: 3, metric: { name: 'jaccard', direction: 'maximize' } }]);
  checkpoint = fixture.saved[0] as ValueFunctionCheckpoint;
  server = await startKeyedServer(fixture.store, 128);
  client = new ValueApiClient({ baseUrl: server.url, apiKey: SECRET_KEY, backoffMs: 1 });
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

describe('ValueApiClient against the Node server', () => {
  const phi = Array.from(new Rng(1).normals(32));

  it('calls every route', async () => {
    expect(await client.health()).toMatchObject({ status: 'ok' });
    expect((await client.openApi()).openapi).toBe('3.0.3');
    expect((await client.listValueFunctions()).map((v) => v.id)).toEqual(['client-vf']);
    expect(await client.getValueFunction('client-vf')).toMatchObject({ d: 32, latest: 1 });
    const compiled = new CompiledValueFunction(checkpoint);
    const predicted = await client.predict('client-vf', phi);
    expect(predicted.normalised[0]).toBeCloseTo(compiled.value(Float32Array.from(phi)), 6);
    const gradient = await client.gradient('client-vf', [phi, phi], { version: 1 });
    expect(gradient.gradients).toHaveLength(2);
    const guided = await client.guide('client-vf', { phi, lossGradients: [phi], seed: 7 });
    expect(guided.direction).toHaveLength(32);
    expect(guided.seed).toBe(7);
  });

  it('speaks the binary form and agrees with JSON', async () => {
    const rows = Float32Array.from([...phi, ...phi.map((x) => -x)]);
    const binary = await client.gradientBinary('client-vf', rows, 32);
    const viaJson = await client.gradient('client-vf', [phi, phi.map((x) => -x)]);
    expect(binary.version).toBe(1);
    expect(Array.from(binary.values)).toEqual(viaJson.values.map(Math.fround));
    expect(Array.from(binary.gradients)).toEqual(viaJson.gradients.flat().map(Math.fround));
    const predicted = await client.predictBinary('client-vf', rows);
    expect(Array.from(predicted.values)).toEqual(Array.from(binary.values));
  });

  it('throws ValueApiError with the status and code of a 4xx, without retrying', async () => {
    let calls = 0;
    const counting = new ValueApiClient({
      baseUrl: server.url,
      apiKey: SECRET_KEY,
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });
    const error = await counting.predict('client-vf', phi.slice(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValueApiError);
    expect(error).toMatchObject({
      status: 400,
      code: 'DIMENSION_MISMATCH',
      message: "predict: phi has 31 entries, value function 'client-vf' expects 32",
    });
    expect(calls).toBe(1);
    const unauthorised = new ValueApiClient({ baseUrl: server.url, apiKey: 'wrong' });
    await expect(unauthorised.listValueFunctions()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  });

  it('retries 5xx and network errors with backoff, then succeeds', async () => {
    let calls = 0;
    const flaky = new ValueApiClient({
      baseUrl: server.url,
      apiKey: SECRET_KEY,
      backoffMs: 1,
      fetch: async (input, init) => {
        calls++;
        if (calls === 1) throw new TypeError('fetch failed');
        if (calls === 2) return new Response('{"error":{"code":"INTERNAL","message":"boom"}}', { status: 503 });
        return fetch(input, init);
      },
    });
    expect((await flaky.predict('client-vf', phi)).values).toHaveLength(1);
    expect(calls).toBe(3);
  });

  it('gives up after the last retry with the last error', async () => {
    let calls = 0;
    const down = new ValueApiClient({
      baseUrl: server.url,
      retries: 2,
      backoffMs: 1,
      fetch: async () => {
        calls++;
        return new Response('{"error":{"code":"INTERNAL","message":"boom"}}', { status: 500 });
      },
    });
    await expect(down.health()).rejects.toMatchObject({ status: 500, code: 'INTERNAL' });
    expect(calls).toBe(3);
    const unreachable = new ValueApiClient({ baseUrl: 'http://127.0.0.1:9', retries: 1, backoffMs: 1 });
    await expect(unreachable.health()).rejects.toMatchObject({ status: 0, code: 'NETWORK' });
  });
});

describe('ValueApiClient on bad local input and odd answers (issue 10)', () => {
  const phi = Array.from(new Rng(1).normals(32));
  /** A client whose fetch counts the calls that reach it. */
  const counted = (fake?: typeof fetch) => {
    const calls = { n: 0 };
    const c = new ValueApiClient({
      baseUrl: server.url,
      apiKey: SECRET_KEY,
      retries: 0,
      fetch: (input, init) => {
        calls.n++;
        return fake ? fake(input, init) : fetch(input, init);
      },
    });
    return { c, calls };
  };

  it('refuses NaN and Infinity in phi before sending, instead of sending null', async () => {
    const { c, calls } = counted();
    const nan = [...phi];
    nan[3] = Number.NaN;
    await expect(c.predict('client-vf', nan)).rejects.toMatchObject({
      status: 0,
      code: 'NOT_FINITE',
      message: 'predict: phi[3] is NaN; JSON cannot carry it',
    });
    await expect(c.gradient('client-vf', [phi, [Number.POSITIVE_INFINITY, ...phi.slice(1)]])).rejects.toMatchObject({
      code: 'NOT_FINITE',
      message: 'gradient: phi[1][0] is Infinity; JSON cannot carry it',
    });
    await expect(c.guide('client-vf', { phi, lossGradients: [phi, nan] })).rejects.toMatchObject({
      code: 'NOT_FINITE',
      message: 'guide: lossGradients[1][3] is NaN; JSON cannot carry it',
    });
    expect(calls.n).toBe(0);
  });

  it('uploads labels with rows and context as stored, and refuses bad context with nothing stored', async () => {
    const { c, calls } = counted();
    const job = { id: 'labels-ctx', metric: { name: 'instance-cost', direction: 'minimize' as const } };
    await c.createFitJob({ ...job, output: { valueFunctionId: 'labels-ctx' } });
    const labels = Int32Array.from([1, 0, 1]);
    const amount = Float64Array.from([2.5, 0.1, 1e-300]);
    const sent = calls.n;
    const nan = { context: { amount: [1, Number.NaN, 2] } };
    await expect(c.uploadLabels(job.id, labels, 2, nan)).rejects.toMatchObject({
      status: 0,
      code: 'NOT_FINITE',
      message: 'uploadLabels: context.amount[1] is NaN; JSON cannot carry it',
    });
    expect(() => new Recorder().labels(labels, 2, nan)).toThrow(/context.amount\[1\] is NaN/);
    expect(calls.n).toBe(sent);
    for (const [bad, message] of [
      [{ context: { amount: [1, 2] } }, /every context column must have one value per label/],
      [{ rows: [4, 4, 1], context: { amount } }, /rows must not repeat a row/],
      [{ rows: [4, 1] }, /rows must have one entry per label/],
    ] as const) {
      const error = await c.uploadLabels(job.id, labels, 2, bad).catch((e: unknown) => e);
      expect(error).toMatchObject({ status: 400, code: 'PREDICTIONS_INVALID' });
      expect(JSON.stringify((error as ValueApiError).details)).toMatch(message);
    }
    expect((await c.fitJob(job.id)).uploads.labels).toBeNull();

    expect(await c.uploadLabels(job.id, labels, 2, { rows: [9, 4, 1], context: { amount } })).toMatchObject({
      created: true,
    });
    expect(await readFitLabels(fixture.store, job.id)).toEqual({
      classes: 2,
      labels: [1, 0, 1],
      rows: [9, 4, 1],
      context: { amount: [2.5, 0.1, 1e-300] },
    });
    // The same again is fine; the same labels with other rows are a conflict, not a silent overwrite.
    expect(await c.uploadLabels(job.id, labels, 2, { rows: [9, 4, 1], context: { amount } })).toMatchObject({
      created: false,
    });
    await expect(c.uploadLabels(job.id, labels, 2, { rows: [4, 9, 1], context: { amount } })).rejects.toMatchObject({
      status: 409,
      code: 'PREDICTIONS_CONFLICT',
    });
  });

  it('throws DIMENSION_MISMATCH from gradientBinary for a d that is not the value function one', async () => {
    const { c, calls } = counted();
    const rows = Float32Array.from([...phi, ...phi]); // two rows of d = 32
    await expect(c.gradientBinary('client-vf', rows, 16)).rejects.toMatchObject({
      status: 200,
      code: 'DIMENSION_MISMATCH',
      message:
        "gradientBinary: the answer has 66 values, not n + n x d = 68 for d = 16: d is not the dimension of value function 'client-vf'",
    });
    await expect(c.gradientBinary('client-vf', rows, 24)).rejects.toMatchObject({
      status: 0,
      code: 'DIMENSION_MISMATCH',
    });
    expect(calls.n).toBe(1);
    expect((await c.gradientBinary('client-vf', rows, 32)).gradients).toHaveLength(64);
  });

  it('wraps a 200 whose body is not JSON, or not float32, in ValueApiError', async () => {
    const html = counted(async () => new Response('<html>proxy login</html>', { status: 200 })).c;
    await expect(html.health()).rejects.toMatchObject({
      status: 200,
      code: 'INVALID_RESPONSE',
      message: 'GET /healthz: HTTP 200 with a body that is not JSON: "<html>proxy login</html>"',
    });
    await expect(html.predictBinary('client-vf', Float32Array.from(phi))).rejects.toMatchObject({
      code: 'INVALID_RESPONSE',
    });
    const odd = counted(
      async () => new Response(new Uint8Array(7), { headers: { 'content-type': 'application/octet-stream' } }),
    ).c;
    await expect(odd.predictBinary('client-vf', Float32Array.from(phi))).rejects.toMatchObject({
      code: 'INVALID_RESPONSE',
    });
  });
});

describe('Node server framing', () => {
  it('sends each response with its own Content-Length (headers are never shared between responses)', async () => {
    const a = await fetch(`${server.url}/healthz`);
    expect(a.headers.get('content-length')).toBe(String((await a.text()).length));
    const b = await fetch(`${server.url}/v1/value-functions/client-vf/gradient`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET_KEY}` },
      body: JSON.stringify({ phi: Array.from(new Rng(2).normals(32)) }),
    });
    const text = await b.text();
    expect(b.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(JSON.parse(text).gradients[0]).toHaveLength(32);
  });

  it('answers 413 for a streamed body past the limit and keeps serving', async () => {
    const big = new Uint8Array((1 << 20) + 16);
    const res = await fetch(`${server.url}/v1/value-functions/client-vf/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${SECRET_KEY}` },
      body: big,
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});
