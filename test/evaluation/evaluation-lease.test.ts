import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import type { EvaluatorRegistry } from '../../shared/ports/evaluator.port.js';
import type { Queue, QueueMessage } from '../../shared/ports/queue.port.js';
import { runEvaluationWorker } from '../../shared/use-cases/evaluation/evaluate-request.js';
import { countingEvaluator, randomLabels, randomQueries, workbench } from './fixtures.js';

const N = 200;

/** The queue, recording every delivery it hands out and refusing to be read as a DLQ. */
function watched(queue: Queue, deliveries: QueueMessage[]): Queue {
  return Object.assign(Object.create(queue) as Queue, {
    async receive(options: Parameters<Queue['receive']>[0]) {
      const got = await queue.receive(options);
      deliveries.push(...got);
      return got;
    },
    async listDeadLetters(): Promise<never> {
      throw new Error('the oracle must not read the dead-letter queue');
    },
  });
}

async function withWorkers<T>(loops: Promise<unknown>[], stop: AbortController, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    stop.abort();
    await Promise.all(loops);
  }
}

describe('evaluation worker leases', () => {
  it('keeps a query whose evaluator outlasts the visibility timeout from a second worker', async () => {
    const slow = countingEvaluator('slow', () => new Promise<number>((r) => setTimeout(() => r(0.25), 1500)));
    const { dir, store, deps } = await workbench([slow], { evaluatorTimeoutMs: 5000 });
    const queue = new LocalQueue(join(dir, 'short-queue'), { visibilityTimeoutMs: 300, maxReceiveCount: 3 });
    const deliveries: QueueMessage[] = [];
    const q = watched(queue, deliveries);
    const oracle = new QueuedMetricOracle({ queue: q, store, metric: { name: 'slow', direction: 'minimize' } });
    await oracle.registerSplit('val', { labels: randomLabels(N, 31), classes: 2 });
    const stop = new AbortController();
    const loops = [0, 1].map((i) =>
      runEvaluationWorker(
        { ...deps, workerId: `w${i}` },
        { queue: q, signal: stop.signal, waitMs: 50, batchSize: 1, leaseSeconds: 0.3 },
      ),
    );

    const results = await withWorkers(loops, stop, () => oracle.evaluate(randomQueries('job-lease', N, 2, 32)));

    expect(results.map((r) => r.ok && r.value.value)).toEqual([0.25, 0.25]);
    expect(deliveries.map((m) => m.receiveCount)).toEqual([1, 1]);
    expect(slow.calls).toBe(2);
    expect(await queue.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });

  it('fails a query at once from the error its worker recorded on the last allowed delivery, never reading the DLQ', async () => {
    const { store, queue, deps } = await workbench([]);
    // A worker fault on every delivery (not an evaluator failure): the registry is unreachable.
    const registry = Object.assign(Object.create(deps.registry) as EvaluatorRegistry, {
      resolve: () => {
        throw new Error('registry unreachable');
      },
    });
    const deliveries: QueueMessage[] = [];
    const q = watched(queue, deliveries);
    const oracle = new QueuedMetricOracle({
      queue: q,
      store,
      metric: { name: 'mcr', direction: 'minimize' },
      deadlineMs: 60_000,
    });
    await oracle.registerSplit('val', { labels: randomLabels(N, 33), classes: 2 });
    const stop = new AbortController();
    const loops = [runEvaluationWorker({ ...deps, registry }, { queue: q, signal: stop.signal, waitMs: 50 })];

    const [r] = await withWorkers(loops, stop, () => oracle.evaluate(randomQueries('job-fault', N, 1, 34)));

    // DEAD_LETTERED, not EVALUATION_DEADLINE_EXCEEDED: it ended before the 60-s deadline.
    expect(r).toMatchObject({ ok: false, error: { code: 'DEAD_LETTERED' } });
    expect(!r?.ok && r?.error.message).toMatch(/worker fault on the last allowed delivery \(3\): registry unreachable/);
    expect(deliveries.map((m) => m.receiveCount)).toEqual([1, 2, 3]);
    const dead = await queue.listDeadLetters();
    expect(dead.map((d) => d.reason)).toEqual([
      'DEAD_LETTERED: worker fault on the last allowed delivery (3): registry unreachable',
    ]);
  });
});
