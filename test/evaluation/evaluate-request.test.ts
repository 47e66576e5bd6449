import { describe, expect, it } from 'vitest';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { mcr } from '../../shared/metrics/builtins.js';
import type { Queue } from '../../shared/ports/queue.port.js';
import { resultKey } from '../../shared/storage/layout.js';
import { type EvaluationResult, evaluationResultSchema } from '../../shared/schemas/evaluation.js';
import {
  type EvaluateRequestDeps,
  evaluateRequest,
  type RequestOutcome,
  runEvaluationWorker,
} from '../../shared/use-cases/evaluation/evaluate-request.js';
import { countingEvaluator, errorRate, messageFor, randomLabels, randomQueries, workbench } from './fixtures.js';
import { onFakeClock } from '../helpers/fake-clock.js';

const N = 200;

/** Runs `n` in-process worker loops on the queue while `fn` runs, then stops them. */
async function withWorkers<T>(
  deps: EvaluateRequestDeps,
  queue: Queue,
  n: number,
  fn: () => Promise<T>,
  outcomes: RequestOutcome[] = [],
): Promise<T> {
  const stop = new AbortController();
  const loops = Array.from({ length: n }, (_, i) =>
    runEvaluationWorker(
      { ...deps, workerId: `w${i}` },
      { queue, signal: stop.signal, waitMs: 50, batchSize: 4, onOutcome: (_, o) => outcomes.push(o) },
    ),
  );
  try {
    return await fn();
  } finally {
    stop.abort();
    await Promise.all(loops);
  }
}

async function readResult(deps: EvaluateRequestDeps, jobId: string, key: string): Promise<EvaluationResult> {
  const bytes = await deps.store.get(resultKey(jobId, key));
  if (!bytes) throw new Error(`no result for ${key}`);
  return evaluationResultSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
}

describe('evaluateRequest', () => {
  it('records the value in both directions with the evaluator name, version and duration', async () => {
    const f1ish = countingEvaluator('acc', (s, l) => 1 - errorRate(s, l), 'maximize');
    const { store, deps } = await workbench([f1ish]);
    const labels = randomLabels(N, 1);
    const scores = Float32Array.from(labels, (y) => (y === 1 ? 0.9 : 0.2));
    scores[0] = labels[0] === 1 ? 0.1 : 0.9; // one mistake
    const msg = await messageFor(store, { jobId: 'job-a', key: 'k1', evaluator: 'acc', scores, labels });

    const outcome = await evaluateRequest(deps, { body: JSON.stringify(msg), receiveCount: 1 });

    expect(outcome).toEqual({ action: 'ack', status: 'evaluated', key: 'k1' });
    const record = await readResult(deps, 'job-a', 'k1');
    expect(record.evaluator).toEqual({ name: 'acc', version: '1.2.3' });
    expect(record.outcome).toMatchObject({ ok: true, value: 1 - 1 / N, direction: 'maximize' });
    expect(record.outcome.ok && record.outcome.normalised).toBeCloseTo(1 / N, 12);
    expect(record.outcome.ok && record.outcome.durationMs).toBeGreaterThanOrEqual(0);
    expect(await store.list('jobs/job-a/claims/')).toEqual([]);
  });

  it('retries an evaluator that throws, then dead-letters it with the error recorded after the max receive count', async () => {
    const broken = countingEvaluator('broken', () => {
      throw new Error('license server unreachable');
    });
    const { store, deps } = await workbench([broken]);
    const msg = await messageFor(store, {
      jobId: 'job-b',
      key: 'k1',
      evaluator: 'broken',
      scores: new Float32Array(N),
      labels: randomLabels(N, 2),
    });
    const body = JSON.stringify(msg);

    const first = await evaluateRequest(deps, { body, receiveCount: 1 });
    const second = await evaluateRequest(deps, { body, receiveCount: 2 });
    expect(first).toMatchObject({ action: 'retry', delayMs: 5 });
    expect(second).toMatchObject({ action: 'retry', delayMs: 10 });
    expect(await store.get(resultKey('job-b', 'k1'))).toBeUndefined();
    const last = await evaluateRequest(deps, { body, receiveCount: 3 });

    expect(last).toMatchObject({ action: 'dead-letter', code: 'EVALUATOR_FAILED' });
    const record = await readResult(deps, 'job-b', 'k1');
    expect(record.outcome).toEqual({
      ok: false,
      code: 'EVALUATOR_FAILED',
      message: "evaluator 'broken' threw: license server unreachable (after 3 deliveries)",
    });
    expect(record.attempt).toBe(3);
    expect(broken.calls).toBe(3);
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['1.5', 1.5],
    ['-0.25', -0.25],
  ])('records %s from a bounded metric as an evaluator error at once, without retrying', async (_, bad) => {
    const liar = countingEvaluator('liar', () => bad);
    const { store, deps } = await workbench([liar]);
    const msg = await messageFor(store, {
      jobId: 'job-c',
      key: 'k1',
      evaluator: 'liar',
      scores: new Float32Array(N),
      labels: randomLabels(N, 3),
    });

    const outcome = await evaluateRequest(deps, { body: JSON.stringify(msg), receiveCount: 1 });

    expect(outcome).toEqual({ action: 'ack', status: 'recorded-error', key: 'k1' });
    const record = await readResult(deps, 'job-c', 'k1');
    expect(record.outcome).toMatchObject({ ok: false, code: 'EVALUATOR_INVALID_VALUE' });
    expect(liar.calls).toBe(1);
  });

  it('sends a message that is not JSON straight to the dead-letter queue with a clear reason', async () => {
    const { deps } = await workbench([]);
    const outcome = await evaluateRequest(deps, { body: '{"jobId": ', receiveCount: 1 });
    expect(outcome).toEqual({
      action: 'dead-letter',
      code: 'MESSAGE_INVALID',
      reason: 'evaluation message: (root): not JSON: "{\\"jobId\\": "',
    });
  });

  it('in a worker pool, dead-letters a malformed message and an unknown evaluator while their batch-mates succeed', async () => {
    const { store, queue, deps } = await workbench([]);
    const labels = randomLabels(N, 30);
    const good = await messageFor(store, {
      jobId: 'job-pool',
      key: 'good',
      evaluator: 'mcr',
      scores: new Float32Array(N),
      labels,
    });
    const unknown = await messageFor(store, {
      jobId: 'job-pool',
      key: 'unknown',
      evaluator: 'nope',
      scores: new Float32Array(N),
      labels,
    });
    await queue.send(['{ not json', JSON.stringify(unknown), JSON.stringify(good)]);
    const outcomes: RequestOutcome[] = [];

    await withWorkers(
      deps,
      queue,
      1,
      async () => {
        while (outcomes.length < 3) await new Promise((r) => setTimeout(r, 20));
      },
      outcomes,
    );

    expect((await readResult(deps, 'job-pool', 'good')).outcome).toMatchObject({ ok: true, value: expect.any(Number) });
    const dead = await queue.listDeadLetters();
    expect(dead.map((d) => d.reason?.split(':')[0]).sort()).toEqual(['MESSAGE_INVALID', 'UNKNOWN_METRIC']);
    expect(dead.every((d) => d.receiveCount === 1)).toBe(true);
    expect(await queue.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 2 });
  });

  it('dead-letters a message that fails the schema, recording the failure where the trainer waits for it', async () => {
    const { store, deps } = await workbench([]);
    const msg = await messageFor(store, {
      jobId: 'job-d',
      key: 'k1',
      evaluator: 'mcr',
      scores: new Float32Array(N),
      labels: randomLabels(N, 4),
    });
    const body = JSON.stringify({ ...msg, taskId: 'seven' });

    const outcome = await evaluateRequest(deps, { body, receiveCount: 1 });

    expect(outcome).toEqual({
      action: 'dead-letter',
      code: 'MESSAGE_INVALID',
      reason: 'evaluation message: taskId: Invalid input: expected number, received string',
    });
    const record = await readResult(deps, 'job-d', 'k1');
    expect(record.outcome).toMatchObject({ ok: false, code: 'MESSAGE_INVALID' });
  });

  it('dead-letters a message naming an unknown evaluator with UNKNOWN_METRIC recorded', async () => {
    const { store, deps } = await workbench([]);
    const msg = await messageFor(store, {
      jobId: 'job-e',
      key: 'k1',
      evaluator: 'secret-sauce',
      scores: new Float32Array(N),
      labels: randomLabels(N, 5),
    });
    const outcome = await evaluateRequest(deps, { body: JSON.stringify(msg), receiveCount: 1 });
    expect(outcome).toMatchObject({ action: 'dead-letter', code: 'UNKNOWN_METRIC' });
    expect(outcome.action === 'dead-letter' && outcome.reason).toMatch(
      /^unknown evaluator 'secret-sauce' \(available: mcr,/,
    );
    expect((await readResult(deps, 'job-e', 'k1')).outcome).toMatchObject({ ok: false, code: 'UNKNOWN_METRIC' });
  });

  it('dead-letters a message whose predictions are missing or the wrong length', async () => {
    const { store, deps } = await workbench([]);
    const labels = randomLabels(N, 6);
    const missing = await messageFor(store, {
      jobId: 'job-f',
      key: 'k1',
      evaluator: 'mcr',
      scores: new Float32Array(N),
      labels,
    });
    await store.delete(missing.predictions && 'key' in missing.predictions ? missing.predictions.key : '');
    const short = await messageFor(store, {
      jobId: 'job-f',
      key: 'k2',
      evaluator: 'mcr',
      scores: new Float32Array(N - 1),
      labels,
    });

    const a = await evaluateRequest(deps, { body: JSON.stringify(missing), receiveCount: 1 });
    const b = await evaluateRequest(deps, { body: JSON.stringify(short), receiveCount: 1 });

    expect(a).toMatchObject({ action: 'dead-letter', code: 'INPUT_MISSING' });
    expect(b).toEqual({
      action: 'dead-letter',
      code: 'METRIC_INPUT_INVALID',
      reason: 'predictions: 199 scores for 200 labels and 2 classes (expected 200)',
      key: 'k2',
    });
  });

  it('records a NaN prediction and an out-of-range label as final METRIC_INPUT_INVALID, no evaluator called', async () => {
    const counted = countingEvaluator('counted', errorRate);
    const { store, deps } = await workbench([counted]);
    const labels = randomLabels(N, 7);
    const scores = new Float32Array(N).fill(0.3);
    scores[17] = Number.NaN;
    const nan = await messageFor(store, { jobId: 'job-n', key: 'k1', evaluator: 'aucpr', scores, labels });
    const badLabels = Int32Array.from(labels);
    badLabels[3] = 2;
    const label = await messageFor(store, {
      jobId: 'job-n2',
      key: 'k2',
      evaluator: 'counted',
      scores: new Float32Array(N).fill(0.3),
      labels: badLabels,
    });

    // aucpr never returned on a NaN score (its tie loop did not advance).
    const a = await evaluateRequest(deps, { body: JSON.stringify(nan), receiveCount: 1 });
    const b = await evaluateRequest(deps, { body: JSON.stringify(label), receiveCount: 1 });

    expect(a).toEqual({
      action: 'dead-letter',
      code: 'METRIC_INPUT_INVALID',
      reason: 'aucpr: prediction score 17 is NaN, not a finite number',
      key: 'k1',
    });
    expect(b).toEqual({
      action: 'dead-letter',
      code: 'METRIC_INPUT_INVALID',
      reason: 'counted: label 3 is 2, outside 0..1 for a 2-class task',
      key: 'k2',
    });
    expect(counted.calls).toBe(0);
    expect((await readResult(deps, 'job-n', 'k1')).outcome).toMatchObject({ ok: false, code: 'METRIC_INPUT_INVALID' });
  });

  it('runs the evaluator once for a message delivered twice, one after the other', async () => {
    const counted = countingEvaluator('counted', errorRate);
    const { store, deps } = await workbench([counted]);
    const msg = await messageFor(store, {
      jobId: 'job-g',
      key: 'k1',
      evaluator: 'counted',
      scores: new Float32Array(N),
      labels: randomLabels(N, 7),
    });
    const body = JSON.stringify(msg);

    const first = await evaluateRequest(deps, { body, receiveCount: 1 });
    const again = await evaluateRequest(deps, { body, receiveCount: 1 });

    expect(first).toMatchObject({ status: 'evaluated' });
    expect(again).toEqual({ action: 'ack', status: 'duplicate', key: 'k1' });
    expect(counted.calls).toBe(1);
    expect(await store.list('jobs/job-g/results/')).toEqual(['jobs/job-g/results/k1.json']);
  });

  it('replaces a torn result record left by a worker killed inside the exclusive create', async () => {
    const counted = countingEvaluator('counted', errorRate);
    const { store, deps } = await workbench([counted]);
    const msg = await messageFor(store, {
      jobId: 'job-torn',
      key: 'k1',
      evaluator: 'counted',
      scores: new Float32Array(N),
      labels: randomLabels(N, 31),
    });
    await store.putIfAbsent(resultKey('job-torn', 'k1'), ''); // created, never written

    const outcome = await evaluateRequest(deps, { body: JSON.stringify(msg), receiveCount: 2 });

    expect(outcome).toEqual({ action: 'ack', status: 'evaluated', key: 'k1' });
    expect((await readResult(deps, 'job-torn', 'k1')).outcome).toMatchObject({ ok: true });
    expect(counted.calls).toBe(1);
  });

  it('runs the evaluator once when two workers get the same message at the same time', async () => {
    const slow = countingEvaluator('slow', async (s, l) => {
      await new Promise((r) => setTimeout(r, 100));
      return errorRate(s, l);
    });
    const { store, deps, queue } = await workbench([slow]);
    const msg = await messageFor(store, {
      jobId: 'job-h',
      key: 'k1',
      evaluator: 'slow',
      scores: new Float32Array(N),
      labels: randomLabels(N, 8),
    });
    await queue.send([JSON.stringify(msg), JSON.stringify(msg)]);
    const outcomes: RequestOutcome[] = [];

    await withWorkers(
      deps,
      queue,
      2,
      async () => {
        for (let i = 0; i < 100 && (await store.get(resultKey('job-h', 'k1'))) === undefined; i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        while ((await queue.counts()).inFlight + (await queue.counts()).visible > 0) {
          await new Promise((r) => setTimeout(r, 20));
        }
      },
      outcomes,
    );

    expect(slow.calls).toBe(1);
    expect(outcomes.filter((o) => o.action === 'ack' && o.status === 'evaluated')).toHaveLength(1);
    expect(outcomes.filter((o) => o.action === 'ack' && o.status === 'duplicate')).toHaveLength(1);
    expect(await store.list('jobs/job-h/results/')).toEqual(['jobs/job-h/results/k1.json']);
  });
});

describe('QueuedMetricOracle with in-process workers', () => {
  it('gives exactly the in-process values for the same queries', async () => {
    const { store, queue, deps } = await workbench([]);
    const labels = randomLabels(N, 10);
    const queries = randomQueries('job-same', N, 30, 11);
    const queued = new QueuedMetricOracle({ queue, store, metric: { name: 'mcr', direction: 'minimize' } });
    const direct = new InProcessMetricOracle(mcr);
    for (const o of [queued, direct]) await o.registerSplit('val', { labels, classes: 2 });

    const viaQueue = await withWorkers(deps, queue, 2, () => queued.evaluate(queries));
    const inProcess = await direct.evaluate(queries);

    const values = (rs: typeof inProcess) => rs.map((r) => (r.ok ? [r.value.value, r.value.normalised] : r.error.code));
    expect(values(viaQueue)).toEqual(values(inProcess));
    expect(queued.calls).toBe(30);
    expect(await store.list('jobs/job-same/predictions/')).toEqual([]); // answered: cleaned up
    expect(await store.list('jobs/job-same/splits/')).toEqual([
      expect.stringMatching(/^jobs\/job-same\/splits\/val\.[0-9a-f]{16}\.labels$/),
    ]);
  });

  it('gives the trainer a structured failure for an evaluator that keeps failing, and the other values', async () => {
    let call = 0;
    const flaky = countingEvaluator('every-third-fails-for-good', (s, l) => {
      call++;
      if (s[0] === 0.5) throw new Error('cannot score this one');
      return errorRate(s, l);
    });
    const { store, queue, deps } = await workbench([flaky]);
    const queries = randomQueries('job-fail', N, 6, 12);
    (queries[2] as { scores: Float32Array }).scores[0] = 0.5;
    const oracle = new QueuedMetricOracle({ queue, store, metric: { name: flaky.name, direction: 'minimize' } });
    await oracle.registerSplit('val', { labels: randomLabels(N, 13), classes: 2 });

    const results = await withWorkers(deps, queue, 1, () => oracle.evaluate(queries));

    expect(results.map((r) => r.ok)).toEqual([true, true, false, true, true, true]);
    expect(results[2]).toMatchObject({ ok: false, error: { code: 'EVALUATOR_FAILED', name: 'EvaluationError' } });
    expect(call).toBe(5 + 3);
    const dead = await queue.listDeadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.reason).toMatch(
      /^EVALUATOR_FAILED: evaluator 'every-third-fails-for-good' threw: cannot score this one/,
    );
    // The failed query's predictions stay for a replay of its dead letter; the answered ones go.
    expect(await store.list('jobs/job-fail/predictions/')).toHaveLength(1);
  });

  it('gives EVALUATOR_TIMEOUT after the retries when the evaluator does not answer in time', async () => {
    const sleepy = countingEvaluator('sleepy', () => new Promise<number>((r) => setTimeout(() => r(0.1), 2000)));
    const { store, queue, deps } = await workbench([sleepy], { evaluatorTimeoutMs: 30 });
    const oracle = new QueuedMetricOracle({ queue, store, metric: { name: 'sleepy', direction: 'minimize' } });
    await oracle.registerSplit('val', { labels: randomLabels(N, 14), classes: 2 });

    const [result] = await withWorkers(deps, queue, 1, () => oracle.evaluate(randomQueries('job-slow', N, 1, 15)));

    expect(result).toMatchObject({ ok: false, error: { code: 'EVALUATOR_TIMEOUT' } });
    expect(sleepy.calls).toBe(3);
    expect((await queue.counts()).deadLetters).toBe(1);
  });

  it('returns EVALUATION_DEADLINE_EXCEEDED instead of hanging when no worker answers', async () => {
    const { store, queue } = await workbench([]);
    const oracle = new QueuedMetricOracle({
      queue,
      store,
      metric: { name: 'mcr', direction: 'minimize' },
      deadlineMs: 300,
    });
    await oracle.registerSplit('val', { labels: randomLabels(N, 16), classes: 2 });

    const { value: results, elapsedMs } = await onFakeClock(() => oracle.evaluate(randomQueries('job-none', N, 3, 17)));

    // On the fake clock: it gave up at its 300-ms deadline (plus at most one poll).
    expect(elapsedMs).toBeGreaterThanOrEqual(300);
    expect(elapsedMs).toBeLessThan(1300);
    expect(results.map((r) => !r.ok && r.error.code)).toEqual(Array(3).fill('EVALUATION_DEADLINE_EXCEEDED'));
    expect((await queue.counts()).visible).toBe(3); // nothing lost: a worker started later still answers
  });

  it('fails pending queries at once when the health check says the workers are gone', async () => {
    const { store, queue } = await workbench([]);
    const oracle = new QueuedMetricOracle({
      queue,
      store,
      metric: { name: 'mcr', direction: 'minimize' },
      health: () => 'all 2 evaluator workers exited (last: code 1)',
    });
    await oracle.registerSplit('val', { labels: randomLabels(N, 18), classes: 2 });
    const [r] = await oracle.evaluate(randomQueries('job-dead', N, 1, 19));
    expect(r).toMatchObject({ ok: false, error: { code: 'EVALUATION_DEADLINE_EXCEEDED' } });
    expect(!r?.ok && r?.error.message).toMatch(/no result: all 2 evaluator workers exited \(last: code 1\)$/);
  });

  it('reports an unregistered split without sending anything', async () => {
    const { store, queue } = await workbench([]);
    const oracle = new QueuedMetricOracle({ queue, store, metric: { name: 'mcr', direction: 'minimize' } });
    const [r] = await oracle.evaluate(randomQueries('job-nosplit', N, 1, 20));
    expect(r).toMatchObject({
      ok: false,
      error: { code: 'METRIC_INPUT_INVALID', message: "split 'val' was not registered" },
    });
    expect(await queue.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });
});
