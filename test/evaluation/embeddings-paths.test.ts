import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSRecord } from 'aws-lambda';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvaluateMetricHandler } from '../../functions/evaluate-metric/handler.js';
import { loadEvaluatorModule } from '../../shared/adapters/evaluator-module.in-process.js';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { webhookEvaluatorOf } from '../../shared/adapters/evaluator.webhook.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { evaluateChecked } from '../../shared/metrics/checked-evaluator.js';
import { createEvaluatorRegistry } from '../../shared/metrics/evaluator-registry.js';
import type { EvaluationInput, Evaluator, EvaluatorRegistry } from '../../shared/ports/evaluator.port.js';
import type { MetricOracle, MetricQuery, SplitLabels } from '../../shared/ports/metric-oracle.port.js';
import { evaluationMessageSchema, type WebhookEvaluatorSpec, webhookSpecs } from '../../shared/schemas/evaluation.js';
import {
  type EvaluateRequestDeps,
  evaluateRequest,
  runEvaluationWorker,
} from '../../shared/use-cases/evaluation/evaluate-request.js';
import { Rng } from '../../shared/util/random.js';
import { tempDir, unitRows } from './fixtures.js';

/**
 * Issue 24: a user evaluator declaring `outputs: ['embedding']` receives the model's embeddings
 * intact, in order, with rows, on every evaluation path (in process, worker thread, evaluation
 * queue, Lambda handler, webhook), and a wrong length is METRIC_INPUT_INVALID on each. The module
 * answers a 32-bit FNV-1a fingerprint of everything it sees (dim, embeddings' float32 bits,
 * rows, labels, scores) and throws without embeddings or rows: equal values mean equal inputs.
 */
const FINGERPRINT_MODULE = `
function fnv(h, x) {
  for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((x >>> s) & 0xff), 16777619) >>> 0;
  return h;
}
export default {
  name: 'embedding-fingerprint',
  direction: 'maximize',
  outputs: ['embedding'],
  evaluate({ scores, labels, classes, rows, embeddings }) {
    if (!embeddings) throw new Error('no embeddings');
    if (!rows) throw new Error('no rows');
    let h = fnv(2166136261, classes);
    h = fnv(h, embeddings.dim);
    for (const b of new Uint32Array(Float32Array.from(embeddings.values).buffer)) h = fnv(h, b);
    for (const r of rows) h = fnv(h, r);
    for (const y of labels) h = fnv(h, y);
    for (const b of new Uint32Array(Float32Array.from(scores).buffer)) h = fnv(h, b);
    return h / 4294967296;
  },
};
`;

const N = 29;
const DIM = 6;
const QUERIES = 5;

const rng = new Rng(24);
/** A split of N rows of a 400-row data set, out of order, 3 classes. */
const split: SplitLabels & { rows: Int32Array } = (() => {
  const picked = new Set<number>();
  while (picked.size < N) picked.add(rng.int(400));
  return { labels: Int32Array.from({ length: N }, () => rng.int(3)), classes: 3, rows: Int32Array.from(picked) };
})();

/** Per query: probabilities (n x 3) and embeddings (n x DIM), both changing from query to query. */
const perQuery = Array.from({ length: QUERIES }, () => ({
  scores: Float32Array.from({ length: N * 3 }, () => rng.next()),
  embeddings: { dim: DIM, values: unitRows(rng, N, DIM) },
}));
/** One embedding row short: n x dim - dim values. */
const short = { dim: DIM, values: unitRows(rng, N - 1, DIM) };

const inputOf = (q: (typeof perQuery)[number], embeddings = q.embeddings): EvaluationInput => ({
  scores: q.scores,
  labels: split.labels,
  classes: split.classes,
  rows: split.rows,
  embeddings,
});

let dir: string;
let modulePath: string;
let reference: Evaluator;
/** The fingerprint computed in this thread, directly on each query's arrays. */
let expected: number[];

beforeAll(async () => {
  dir = await tempDir('mo-embeddings-');
  modulePath = join(dir, 'embedding-fingerprint.mjs');
  await writeFile(modulePath, FINGERPRINT_MODULE);
  const loaded = await loadEvaluatorModule(modulePath);
  if (!loaded.ok) throw loaded.error;
  reference = loaded.value;
  expected = await Promise.all(perQuery.map(async (q) => reference.evaluate(inputOf(q))));
  // The fingerprint tells embeddings apart, order included: a swap of two rows changes it.
  const swapped = Float32Array.from(perQuery[0]?.embeddings.values as Float32Array);
  swapped.copyWithin(0, DIM, 2 * DIM).set(perQuery[0]?.embeddings.values.subarray(0, DIM) as Float32Array, DIM);
  const q0 = perQuery[0] as (typeof perQuery)[number];
  expect(await reference.evaluate(inputOf(q0, { dim: DIM, values: swapped }))).not.toBe(expected[0]);
  expect(new Set(expected).size).toBe(QUERIES);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const queries = (jobId: string): MetricQuery[] =>
  perQuery.map((q, i) => ({ jobId, taskId: 0, step: i, split: 'val', scores: q.scores, embeddings: q.embeddings }));
const badQuery = (jobId: string): MetricQuery => ({
  jobId,
  taskId: 1,
  step: 0,
  split: 'val',
  scores: (perQuery[0] as (typeof perQuery)[number]).scores,
  embeddings: short,
});

async function oracleValues(oracle: MetricOracle, jobId: string) {
  const results = await oracle.evaluate([...queries(jobId), badQuery(jobId)]);
  return {
    values: results.slice(0, QUERIES).map((r) => {
      if (!r.ok) throw r.error;
      return r.value.value;
    }),
    bad: results[QUERIES],
  };
}

async function registryWith(path: string): Promise<EvaluatorRegistry> {
  const r = await createEvaluatorRegistry([{ kind: 'module', path }], {
    loadModule: (p) => loadEvaluatorModuleInWorker(p),
    webhook: () => {
      throw new Error('no webhooks here');
    },
  });
  if (!r.ok) throw r.error;
  return r.value;
}

function queueBench(name: string, inlineMaxBytes = 0) {
  const store = new FsObjectStore(join(dir, name, 'store'));
  const queue = new LocalQueue(join(dir, name, 'queue'), { visibilityTimeoutMs: 5000, maxReceiveCount: 2 });
  const oracle = new QueuedMetricOracle({
    queue,
    store,
    metric: { name: 'embedding-fingerprint', direction: 'maximize' },
    deadlineMs: 30_000,
    inlineMaxBytes,
  });
  const deps = async (): Promise<EvaluateRequestDeps> => ({
    store,
    registry: await registryWith(modulePath),
    workerId: name,
    maxReceiveCount: 2,
    evaluatorTimeoutMs: 10_000,
    retryDelayMs: 5,
  });
  return { store, queue, oracle, deps };
}

describe('embeddings on every evaluation path', () => {
  it('reach a module evaluator in process through the in-process oracle, and a short set is METRIC_INPUT_INVALID', async () => {
    const oracle = new InProcessMetricOracle(reference);
    await oracle.registerSplit('val', split);

    const { values, bad } = await oracleValues(oracle, 'job-p');

    expect(values).toEqual(expected);
    expect(bad?.ok === false && bad.error.code).toBe('METRIC_INPUT_INVALID');
  });

  it('reach a module evaluator in a worker thread, and a short set is METRIC_INPUT_INVALID', async () => {
    const inWorker = await loadEvaluatorModuleInWorker(modulePath);
    if (!inWorker.ok) throw inWorker.error;
    expect(inWorker.value.outputs).toEqual(['embedding']);
    const got = [];
    for (const q of perQuery) got.push(await evaluateChecked(inWorker.value, inputOf(q), 10_000));
    expect(got.map((r) => r.ok && r.value.value)).toEqual(expected);
    const bad = await evaluateChecked(inWorker.value, inputOf(perQuery[0] as (typeof perQuery)[number], short), 10_000);
    expect(!bad.ok && bad.error.code).toBe('METRIC_INPUT_INVALID');
  });

  it.each([
    ['by key, one object per query, deleted once answered', 0],
    ['inline in the message', 1 << 20],
  ])('reach the worker of the evaluation queue %s', async (_, inlineMaxBytes) => {
    const name = `queue-${inlineMaxBytes}`;
    const { queue, oracle, deps } = queueBench(name, inlineMaxBytes);
    await oracle.registerSplit('val', split);
    const stop = new AbortController();
    const sent: string[] = [];
    const worker = runEvaluationWorker(await deps(), {
      queue,
      waitMs: 20,
      signal: stop.signal,
      onOutcome: (m) => sent.push(m.body),
    });

    const { values, bad } = await oracleValues(oracle, 'job-q');
    stop.abort();
    await worker;

    expect(values).toEqual(expected);
    expect(bad?.ok === false && bad.error.code).toBe('METRIC_INPUT_INVALID');
    expect(sent).toHaveLength(QUERIES + 1);
    const bodies = sent.map((b) => evaluationMessageSchema.parse(JSON.parse(b)));
    for (const m of bodies) {
      expect(m.rows).toEqual({ key: expect.stringMatching(/\.rows$/) });
      expect(m.embeddings?.dim).toBe(DIM);
      if (inlineMaxBytes === 0) expect(m.embeddings?.data).toEqual({ key: expect.stringMatching(/\.emb\.f32$/) });
      else expect(m.embeddings?.data).toHaveProperty('inline');
    }
    // Other embeddings, other query: every message has its own key.
    expect(new Set(bodies.map((m) => m.idempotencyKey)).size).toBe(QUERIES + 1);
    if (inlineMaxBytes === 0) {
      // The answered queries' payloads are gone; the failed one's stay (for a replay from the DLQ).
      const left = await readdir(join(dir, name, 'store', 'jobs', 'job-q', 'predictions'));
      expect(left.sort()).toEqual([
        expect.stringMatching(/^t1-s0-.*\.emb\.f32$/),
        expect.stringMatching(/^t1-s0-.*\.f32$/),
      ]);
    }
  });

  it('reach the evaluator in the evaluate-metric Lambda handler, and a short set is METRIC_INPUT_INVALID', async () => {
    const { queue, oracle, deps } = queueBench('lambda');
    await oracle.registerSplit('val', split);
    const deadLettered: string[] = [];
    const handler = createEvaluateMetricHandler({
      request: await deps(),
      deadLetter: async (_body, reason) => {
        deadLettered.push(reason);
      },
      logger: new Logger({ serviceName: 'test', logLevel: 'SILENT' }),
    });
    const context = { functionName: 'evaluate-metric', awsRequestId: 'r' } as unknown as Context;
    let done = false;
    // The Lambda event source: receive from the queue, hand the records to the handler, delete them.
    const pump = (async () => {
      while (!done) {
        const messages = await queue.receive({ max: 10, waitMs: 20 });
        if (messages.length === 0) continue;
        const Records = messages.map(
          (m) =>
            ({
              messageId: m.id,
              body: m.body,
              attributes: { ApproximateReceiveCount: String(m.receiveCount) },
            }) as unknown as SQSRecord,
        );
        const response = await handler({ Records }, context);
        expect(response.batchItemFailures).toEqual([]);
        for (const m of messages) await queue.ack(m.receipt);
      }
    })();

    const { values, bad } = await oracleValues(oracle, 'job-l');
    done = true;
    await pump;

    expect(values).toEqual(expected);
    expect(bad?.ok === false && bad.error.code).toBe('METRIC_INPUT_INVALID');
    expect(deadLettered).toEqual([expect.stringMatching(/^METRIC_INPUT_INVALID: .*embedding/)]);
  });

  it('reach a webhook receiver declared with outputs ["embedding"], and a short set never leaves', async () => {
    const received: number[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', async () => {
        const b = JSON.parse(body) as {
          scores: number[];
          labels: number[];
          classes: number;
          rows: number[];
          embeddings: { dim: number; values: number[] };
        };
        received.push(b.labels.length);
        const value = await reference.evaluate({
          scores: Float32Array.from(b.scores),
          labels: Int32Array.from(b.labels),
          classes: b.classes,
          rows: Int32Array.from(b.rows),
          embeddings: { dim: b.embeddings.dim, values: Float32Array.from(b.embeddings.values) },
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/metric`;
      // As METRICOPT_WEBHOOKS configures it: the entry's outputs reach the evaluator.
      const [spec] = webhookSpecs(
        [{ name: 'embedding-fingerprint', url, direction: 'maximize', outputs: ['embedding'] }],
        'a-shared-secret-of-some-length',
      );
      const hook = webhookEvaluatorOf(spec as WebhookEvaluatorSpec);
      expect(hook.outputs).toEqual(['embedding']);
      const got = [];
      for (const q of perQuery) got.push(await evaluateChecked(hook, inputOf(q)));
      expect(got.map((r) => r.ok && r.value.value)).toEqual(expected);
      const bad = await evaluateChecked(hook, inputOf(perQuery[0] as (typeof perQuery)[number], short));
      expect(!bad.ok && bad.error.code).toBe('METRIC_INPUT_INVALID');
      expect(received).toEqual(perQuery.map(() => N));
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('evaluateRequest with an embeddings reference', () => {
  async function stored(name: string) {
    const bench = queueBench(name);
    const q = perQuery[0] as (typeof perQuery)[number];
    const bytes = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    await bench.store.put('l', bytes(split.labels));
    await bench.store.put('r', bytes(split.rows));
    await bench.store.put('p', bytes(q.scores));
    await bench.store.put('e', bytes(q.embeddings.values));
    await bench.store.put('odd', new Uint8Array(7));
    const body = (embeddings: unknown, key: string) =>
      JSON.stringify({
        version: 'metricopt.evaluation/v1',
        jobId: 'j',
        taskId: 0,
        step: 0,
        split: 'val',
        evaluator: 'embedding-fingerprint',
        idempotencyKey: key,
        predictions: { key: 'p' },
        labels: { key: 'l' },
        rows: { key: 'r' },
        classes: 3,
        sentAt: new Date().toISOString(),
        ...(embeddings === undefined ? {} : { embeddings }),
      });
    return { ...bench, deps: await bench.deps(), body };
  }
  const outcomeOf = async (store: FsObjectStore, key: string) =>
    JSON.parse(new TextDecoder().decode(await store.get(`jobs/j/results/${key}.json`))).outcome;

  it('hands the stored embeddings to the evaluator', async () => {
    const { deps, body, store } = await stored('req-ok');

    const outcome = await evaluateRequest(deps, {
      body: body({ dim: DIM, data: { key: 'e' } }, 'k1'),
      receiveCount: 1,
    });

    expect(outcome).toMatchObject({ action: 'ack', status: 'evaluated' });
    expect((await outcomeOf(store, 'k1')).value).toBe(expected[0]);
  });

  it.each([
    ['an embeddings key that is not stored', { dim: DIM, data: { key: 'nope' } }, 'INPUT_MISSING'],
    ['embeddings that are not float32 data', { dim: DIM, data: { key: 'odd' } }, 'METRIC_INPUT_INVALID'],
    ['embeddings of another dimension', { dim: DIM + 1, data: { key: 'e' } }, 'METRIC_INPUT_INVALID'],
    ['no embeddings for an evaluator that reads them', undefined, 'METRIC_INPUT_INVALID'],
  ])('records %s as %s and dead-letters the message', async (_, embeddings, code) => {
    const { deps, body, store } = await stored(`req-${Math.random().toString(36).slice(2)}`);

    const outcome = await evaluateRequest(deps, { body: body(embeddings, 'k2'), receiveCount: 1 });

    expect(outcome).toMatchObject({ action: 'dead-letter', code });
    expect(await outcomeOf(store, 'k2')).toMatchObject({ ok: false, code });
  });
});
