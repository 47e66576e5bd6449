import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSRecord } from 'aws-lambda';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvaluateMetricHandler } from '../../functions/evaluate-metric/handler.js';
import { loadEvaluatorModule } from '../../shared/adapters/evaluator-module.in-process.js';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { createWebhookEvaluator } from '../../shared/adapters/evaluator.webhook.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { evaluateChecked } from '../../shared/metrics/checked-evaluator.js';
import type { EvaluatorRegistry } from '../../shared/ports/evaluator.port.js';
import { createEvaluatorRegistry } from '../../shared/metrics/evaluator-registry.js';
import type { EvaluationInput, Evaluator } from '../../shared/ports/evaluator.port.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import type { MetricQuery, SplitLabels } from '../../shared/ports/metric-oracle.port.js';
import { evaluationMessageSchema } from '../../shared/schemas/evaluation.js';
import {
  type EvaluateRequestDeps,
  evaluateRequest,
  runEvaluationWorker,
} from '../../shared/use-cases/evaluation/evaluate-request.js';
import { putFitLabels, putFitPredictions, scorePredictions } from '../../shared/use-cases/byom/fit-inputs.js';
import { createFitJob, observationsPrefix } from '../../shared/use-cases/byom/fit-job-spec.js';
import { addObservationBatch, loadObservationSet } from '../../shared/use-cases/byom/observation-store.js';
import { parseObservationText } from '../../shared/use-cases/byom/observation-batches.js';
import { Rng } from '../../shared/util/random.js';
import { tempDir } from './fixtures.js';
import { fitJobSpec } from '../helpers/fit-job.js';

/**
 * Issue 19: `rows` and `context` reach the evaluator intact and in order on every path. The
 * evaluator under test answers a fingerprint of everything it sees (a 32-bit FNV-1a hash of
 * the rows, the context columns by name, the labels and the scores' float32 bits, mapped into
 * [0, 1]), and fails when rows or context are missing: equal values on every path mean equal
 * inputs, order included.
 */
const FINGERPRINT_MODULE = `
function fnv(h, x) {
  for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((x >>> s) & 0xff), 16777619) >>> 0;
  return h;
}
export default {
  name: 'fingerprint',
  direction: 'minimize',
  evaluate({ scores, labels, classes, rows, context }) {
    if (!rows) throw new Error('no rows');
    if (!context) throw new Error('no context');
    let h = fnv(2166136261, classes);
    for (const r of rows) h = fnv(h, r);
    for (const name of Object.keys(context).sort()) {
      for (const c of name) h = fnv(h, c.charCodeAt(0));
      const bits = new Uint32Array(Float64Array.from(context[name]).buffer);
      for (const b of bits) h = fnv(h, b);
    }
    for (const y of labels) h = fnv(h, y);
    for (const b of new Uint32Array(Float32Array.from(scores).buffer)) h = fnv(h, b);
    return h / 4294967296;
  },
};
`;

const DATASET_ROWS = 500;
const N = 37;

/** A split of N rows picked out of order from a 500-row data set, with two context columns. */
function splitInput(
  seed: number,
): SplitLabels & { rows: Int32Array; context: { amount: Float64Array; group: Float64Array } } {
  const rng = new Rng(seed);
  const picked = new Set<number>();
  while (picked.size < N) picked.add(Math.floor(rng.next() * DATASET_ROWS));
  const rows = Int32Array.from(picked);
  return {
    labels: Int32Array.from({ length: N }, () => (rng.next() < 0.4 ? 1 : 0)),
    classes: 2,
    rows,
    // Values a lossy path would change: negative, tiny, large, not representable in float32.
    context: {
      amount: Float64Array.from(rows, (r) => Math.exp(Math.sin(r)) * 1e3 + 1 / 3),
      group: Float64Array.from(rows, (r) => (r % 3) - 1 + 1e-12 * r),
    },
  };
}

const scoresOf = (seed: number, count: number) =>
  Array.from({ length: count }, (_, i) => {
    const rng = new Rng(seed * 1000 + i);
    return Float32Array.from({ length: N }, () => rng.next());
  });

let dir: string;
let modulePath: string;
let reference: Evaluator;
const split = splitInput(7);
const scores = scoresOf(7, 6);
/** What each path must give: the fingerprint computed in this thread on the same inputs. */
let expected: number[];

const inputOf = (s: Float32Array): EvaluationInput => ({
  scores: s,
  labels: split.labels,
  classes: split.classes,
  rows: split.rows,
  context: split.context,
});

async function registryWith(path: string, load = loadEvaluatorModuleInWorker): Promise<EvaluatorRegistry> {
  const r = await createEvaluatorRegistry([{ kind: 'module', path }], {
    loadModule: (p) => load(p),
    webhook: () => {
      throw new Error('no webhooks here');
    },
  });
  if (!r.ok) throw r.error;
  return r.value;
}

beforeAll(async () => {
  dir = await tempDir('mo-row-context-');
  modulePath = join(dir, 'fingerprint.mjs');
  await writeFile(modulePath, FINGERPRINT_MODULE);
  const loaded = await loadEvaluatorModule(modulePath);
  if (!loaded.ok) throw loaded.error;
  reference = loaded.value;
  expected = [];
  for (const s of scores) {
    const r = await evaluateChecked(reference, inputOf(s));
    if (!r.ok) throw r.error;
    expected.push(r.value.value);
  }
  // The fingerprint tells inputs apart: every query's differs, and so does a reordered split.
  expect(new Set(expected).size).toBe(scores.length);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const queries = (jobId: string): MetricQuery[] =>
  scores.map((s, i) => ({ jobId, taskId: 0, step: i, split: 'val', scores: s }));

const valuesOf = (results: Awaited<ReturnType<QueuedMetricOracle['evaluate']>>) =>
  results.map((r) => {
    if (!r.ok) throw r.error;
    return r.value.value;
  });

/** A queue, a store and the trainer's oracle for the fingerprint evaluator. */
function queueBench(name: string) {
  const store = new FsObjectStore(join(dir, name, 'store'));
  const queue = new LocalQueue(join(dir, name, 'queue'), { visibilityTimeoutMs: 5000, maxReceiveCount: 2 });
  const oracle = new QueuedMetricOracle({
    queue,
    store,
    metric: { name: 'fingerprint', direction: 'minimize' },
    deadlineMs: 30_000,
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

describe('rows and context on every evaluation path', () => {
  it('reach a module evaluator in a worker thread intact and in order', async () => {
    const inWorker = await loadEvaluatorModuleInWorker(modulePath);
    if (!inWorker.ok) throw inWorker.error;
    const got = [];
    for (const s of scores) got.push(await evaluateChecked(inWorker.value, inputOf(s), 10_000));
    expect(got.map((r) => r.ok && r.value.value)).toEqual(expected);
  });

  it('reach the worker of the evaluation queue, stored once per split and referenced by every message', async () => {
    const { queue, oracle, deps } = queueBench('queue');
    await oracle.registerSplit('val', split);
    const stop = new AbortController();
    const sent: string[] = [];
    const worker = runEvaluationWorker(await deps(), {
      queue,
      waitMs: 20,
      signal: stop.signal,
      onOutcome: (m) => sent.push(m.body),
    });

    const values = valuesOf(await oracle.evaluate(queries('job-q')));
    stop.abort();
    await worker;

    expect(values).toEqual(expected);
    const splitObjects = (await readdir(join(dir, 'queue', 'store', 'jobs', 'job-q', 'splits'))).sort();
    expect(splitObjects.map((f) => f.replace(/\.[0-9a-f]{16}\./, '.*.'))).toEqual([
      'val.*.context',
      'val.*.labels',
      'val.*.rows',
    ]);
    expect(sent).toHaveLength(scores.length);
    for (const body of sent) {
      const m = evaluationMessageSchema.parse(JSON.parse(body));
      expect(m.rows).toEqual({ key: expect.stringMatching(/\.rows$/) });
      expect(m.context).toEqual({ columns: ['amount', 'group'], data: { key: expect.stringMatching(/\.context$/) } });
      expect(body.length).toBeLessThan(1000); // references, never the data
    }
  });

  it('reach the evaluator in the evaluate-metric Lambda handler', async () => {
    const { queue, oracle, deps } = queueBench('lambda');
    await oracle.registerSplit('val', split);
    const handler = createEvaluateMetricHandler({
      request: await deps(),
      deadLetter: async () => {
        throw new Error('nothing should be dead-lettered');
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

    const values = valuesOf(await oracle.evaluate(queries('job-l')));
    done = true;
    await pump;

    expect(values).toEqual(expected);
  });

  it('reach a webhook receiver as JSON arrays in the same order', async () => {
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', async () => {
        const b = JSON.parse(body) as {
          scores: number[];
          labels: number[];
          classes: number;
          rows: number[];
          context: Record<string, number[]>;
        };
        const value = await reference.evaluate({
          scores: Float32Array.from(b.scores),
          labels: Int32Array.from(b.labels),
          classes: b.classes,
          rows: Int32Array.from(b.rows),
          context: Object.fromEntries(Object.entries(b.context).map(([k, v]) => [k, Float64Array.from(v)])),
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/metric`;
      const hook = createWebhookEvaluator({
        name: 'fingerprint',
        url,
        direction: 'minimize',
        secret: 'a-shared-secret-of-some-length',
        timeoutMs: 5000,
      });
      const got = [];
      for (const s of scores) got.push(await evaluateChecked(hook, inputOf(s)));
      expect(got.map((r) => r.ok && r.value.value)).toEqual(expected);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('reach the evaluator of a fit job from the labels upload, through the queue', async () => {
    const { store, queue, deps } = queueBench('fit');
    const spec = fitJobSpec('fit-ctx', 'fingerprint', 'vf');
    expect((await createFitJob(store, spec)).ok).toBe(true);
    const uploaded = await putFitLabels(store, spec.id, {
      classes: 2,
      labels: [...split.labels],
      rows: [...split.rows],
      context: { amount: [...split.context.amount], group: [...split.context.group] },
    });
    expect(uploaded.ok).toBe(true);
    const lines: string[] = [];
    for (const [i, s] of scores.entries()) {
      expect((await putFitPredictions(store, spec.id, `p${i}`, new Uint8Array(s.buffer))).ok).toBe(true);
      lines.push(
        JSON.stringify({ trajectory: 'a', step: i, phi: [i], predictions: { evaluator: 'fingerprint', key: `p${i}` } }),
      );
    }
    const parsed = parseObservationText(`${lines.join('\n')}\n`, 'lines');
    if (!parsed.ok) throw parsed.error;
    expect((await addObservationBatch(store, observationsPrefix(spec), parsed.value, 'lines')).ok).toBe(true);
    const stop = new AbortController();
    const worker = runEvaluationWorker(await deps(), { queue, waitMs: 20, signal: stop.signal });

    const scored = await scorePredictions(
      store,
      spec,
      await loadObservationSet(store, observationsPrefix(spec)),
      async (metric) => new QueuedMetricOracle({ queue, store, metric, deadlineMs: 30_000 }),
      silentProgress,
    );
    stop.abort();
    await worker;

    if (!scored.ok) throw scored.error;
    expect(scored.value.failures).toEqual([]);
    const metrics = [...scored.value.set.byKey.values()].sort((a, b) => a.step - b.step).map((o) => o.metric);
    expect(metrics).toEqual(expected);
  });
});

describe('evaluateRequest with rows and context references', () => {
  async function stored(name: string) {
    const bench = queueBench(name);
    const deps = await bench.deps();
    const labels = split.labels;
    const s = scores[0] as Float32Array;
    await bench.store.put('l', new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
    await bench.store.put('p', new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
    await bench.store.put('r', new Uint8Array(split.rows.buffer));
    const data = new Float64Array(2 * N);
    data.set(split.context.amount, 0);
    data.set(split.context.group, N);
    await bench.store.put('c', new Uint8Array(data.buffer));
    const message = (extra: Record<string, unknown>, key: string) =>
      JSON.stringify({
        version: 'metricopt.evaluation/v1',
        jobId: 'j',
        taskId: 0,
        step: 0,
        split: 'val',
        evaluator: 'fingerprint',
        idempotencyKey: key,
        predictions: { key: 'p' },
        labels: { key: 'l' },
        classes: 2,
        sentAt: new Date().toISOString(),
        ...extra,
      });
    return { ...bench, deps, message };
  }
  const resultOf = async (store: FsObjectStore, key: string) =>
    JSON.parse(new TextDecoder().decode(await store.get(`jobs/j/results/${key}.json`))).outcome;

  it('hands the stored rows and context to the evaluator', async () => {
    const { deps, message, store } = await stored('req-ok');
    const body = message({ rows: { key: 'r' }, context: { columns: ['amount', 'group'], data: { key: 'c' } } }, 'k1');

    const outcome = await evaluateRequest(deps, { body, receiveCount: 1 });

    expect(outcome).toMatchObject({ action: 'ack', status: 'evaluated' });
    expect((await resultOf(store, 'k1')).value).toBe(expected[0]);
  });

  it.each([
    ['a rows key that is not stored', { rows: { key: 'nope' } }, 'INPUT_MISSING'],
    ['a context key that is not stored', { context: { columns: ['amount'], data: { key: 'nope' } } }, 'INPUT_MISSING'],
    [
      'context data for other columns',
      { context: { columns: ['amount'], data: { key: 'c' } } },
      'METRIC_INPUT_INVALID',
    ],
    ['rows of another length', { rows: { key: 'c' } }, 'METRIC_INPUT_INVALID'],
  ])('records %s as %s and dead-letters the message', async (_, extra, code) => {
    const { deps, message, store } = await stored(`req-${code}-${Math.random().toString(36).slice(2)}`);

    const outcome = await evaluateRequest(deps, { body: message(extra, 'k2'), receiveCount: 1 });

    expect(outcome).toMatchObject({ action: 'dead-letter', code });
    expect(await resultOf(store, 'k2')).toMatchObject({ ok: false, code });
  });

  it('dead-letters a message whose context names a column twice as MESSAGE_INVALID', async () => {
    const { deps, message } = await stored('req-dup');
    const body = message({ context: { columns: ['a', 'a'], data: { key: 'c' } } }, 'k3');

    expect(await evaluateRequest(deps, { body, receiveCount: 1 })).toMatchObject({
      action: 'dead-letter',
      code: 'MESSAGE_INVALID',
    });
  });
});
