import { Logger } from '@aws-lambda-powertools/logger';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, expect, it, vi } from 'vitest';
import { createEvaluateMetricHandler } from '../../functions/evaluate-metric/handler.js';
import { openDeadLetterSender, openObjectStore, openQueue } from '../../shared/adapters/from-url.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { countingEvaluator, errorRate, randomLabels, randomQueries, registryOf } from '../evaluation/fixtures.js';
import { createBucket, createQueuePair, describeOnLocalStack, endpoint, localstack, uniqueName } from './localstack.js';
import { startSqsPoller } from './sqs-poller.js';

const PAUSE_MS = 6000;
/** Connect/idle timeout of every SDK client here: well under the pause, above the 1 s long polls. */
const TIMEOUT_MS = 2000;

/**
 * The emulator freezes (SIGSTOP) in the middle of a run of queued evaluations and thaws
 * (SIGCONT) 6 s later: open connections hang, the SDK's timeouts turn them into retries, and
 * the run completes with every result present once and equal to the in-process value.
 * Needs the emulator's process, so it runs on the one scripts/localstack.sh started.
 */
const pid = localstack.available ? localstack.pid : undefined;
if (localstack.available && pid === undefined) {
  console.warn('emulator-pause.test: SKIPPED, the emulator at AWS_ENDPOINT_URL is not a process this run can pause');
}

describeOnLocalStack('a run of queued evaluations while LocalStack is paused', () => {
  afterAll(() => {
    if (pid !== undefined) process.kill(pid, 'SIGCONT'); // never leave it frozen for the next file
  });

  it.skipIf(pid === undefined)(
    'completes through the retries with no result lost or duplicated and no query sent twice',
    async () => {
      // Every HTTP attempt of the SDK clients, and those that ended in a timeout.
      const attempts = { all: 0, timedOut: 0 };
      const handle = NodeHttpHandler.prototype.handle;
      const spy = vi.spyOn(NodeHttpHandler.prototype, 'handle').mockImplementation(function (
        this: NodeHttpHandler,
        ...a
      ) {
        attempts.all++;
        return handle.apply(this, a).catch((e: unknown) => {
          if ((e as Error).name === 'TimeoutError') attempts.timedOut++;
          throw e;
        });
      });

      const connection = { timeoutMs: TIMEOUT_MS, maxAttempts: 20 };
      const storeUrl = await createBucket(uniqueName('pause'));
      const pair = await createQueuePair(uniqueName('pause'), { visibilityTimeoutS: 5, maxReceiveCount: 10 });
      const s3 = { s3Endpoint: endpoint(), s3ForcePathStyle: true, ...connection };
      const sqs = { sqsEndpoint: endpoint(), ...connection };
      const store = await openObjectStore(storeUrl, s3);
      const queue = await openQueue(pair.url, { deadLetterQueueUrl: pair.dlqUrl, ...sqs });
      const dlq = await openDeadLetterSender(pair.dlqUrl, sqs);
      const evaluator = countingEvaluator('counted-mcr', errorRate);
      const handler = createEvaluateMetricHandler({
        request: {
          store,
          registry: await registryOf(evaluator),
          workerId: 'pause-test',
          maxReceiveCount: 10,
          evaluatorTimeoutMs: 1000,
        },
        deadLetter: (body, reason) => dlq.sendToDeadLetterQueue(body, reason),
        logger: new Logger({ serviceName: 'pause-test', logLevel: 'SILENT' }),
      });
      const pollers = [1, 2].map(() => startSqsPoller({ queue, queueArn: pair.arn, handler, waitMs: 1000 }));

      const oracle = new QueuedMetricOracle({
        queue,
        store,
        metric: { name: 'counted-mcr', direction: 'minimize' },
        deadlineMs: 120_000,
      });
      const direct = new InProcessMetricOracle(countingEvaluator('counted-mcr', errorRate));
      const labels = randomLabels(200, 7);
      for (const o of [oracle, direct]) await o.registerSplit('val', { labels, classes: 2 });
      const queries = randomQueries('job-pause', 200, 60, 9);

      // Three batches, as a trainer sends them; the pause starts early in the second.
      const results: Awaited<ReturnType<typeof oracle.evaluate>> = [];
      let paused: Promise<void> | undefined;
      for (let b = 0; b < 3; b++) {
        if (b === 1) paused = pauseEmulator(pid as number, 300, PAUSE_MS);
        results.push(...(await oracle.evaluate(queries.slice(b * 20, b * 20 + 20))));
      }
      await paused;
      const stats = await Promise.all(pollers.map((p) => p.stop()));
      spy.mockRestore();

      const values = (rs: typeof results) => rs.map((r) => (r.ok ? r.value.value : r.error.code));
      expect(values(results)).toEqual(values(await direct.evaluate(queries)));
      expect(oracle.calls).toBe(60);
      expect(await store.list('jobs/job-pause/results/')).toHaveLength(60);
      const counts = await queue.counts();
      expect(counts.deadLetters).toBe(0);
      // The pause really hit requests in flight, and they were retried rather than waited out.
      expect(attempts.timedOut).toBeGreaterThan(0);
      console.log(
        `emulator-pause: ${attempts.timedOut} of ${attempts.all} HTTP attempts timed out and were retried; ` +
          `evaluator ran ${evaluator.calls} times for 60 queries; pollers: ${JSON.stringify(stats)}`,
      );
    },
  );
});

/** SIGSTOP after `afterMs`, SIGCONT `forMs` later. */
async function pauseEmulator(pid: number, afterMs: number, forMs: number): Promise<void> {
  await new Promise((r) => setTimeout(r, afterMs));
  process.kill(pid, 'SIGSTOP');
  await new Promise((r) => setTimeout(r, forMs));
  process.kill(pid, 'SIGCONT');
}
