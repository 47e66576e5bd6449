import { CloudWatchClient, DescribeAlarmsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { openObjectStore, openQueue } from '../../shared/adapters/from-url.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { Queue } from '../../shared/ports/queue.port.js';
import { resultKey } from '../../shared/storage/layout.js';
import { messageFor, randomLabels } from '../evaluation/fixtures.js';
import {
  createBucket,
  createQueuePair,
  describeOnLocalStack,
  endpoint,
  type QueuePair,
  uniqueName,
} from './localstack.js';
import { startSqsPoller } from './sqs-poller.js';

/**
 * The deployed evaluator Lambda (functions/evaluate-metric/lambda.ts, configured from its
 * environment) fed by an in-process stand-in for Lambda's SQS event source mapping, on a real
 * queue with a real dead-letter queue and a CloudWatch alarm on the DLQ's depth.
 */
describeOnLocalStack('evaluate-metric Lambda on SQS (LocalStack)', () => {
  let pair: QueuePair;
  let store: ObjectStore;
  let queue: Queue;
  let handler: (event: SQSEvent) => Promise<SQSBatchResponse>;
  const labels = randomLabels(50, 4);

  beforeAll(async () => {
    const storeUrl = await createBucket(uniqueName('evals'));
    pair = await createQueuePair(uniqueName('evals'), { visibilityTimeoutS: 2, maxReceiveCount: 3 });
    const modules = await mkdtemp(join(tmpdir(), 'metricopt-modules-'));
    await writeFile(
      join(modules, 'quarter.mjs'),
      "export default { name: 'quarter', direction: 'maximize', evaluate: () => 0.25 };",
    );
    await writeFile(
      join(modules, 'down.mjs'),
      "export default { name: 'down', direction: 'minimize', evaluate: () => { throw new Error('upstream 503'); } };",
    );
    // Exactly the variables the function is configured with; the SDK finds the emulator through
    // AWS_ENDPOINT_URL (setup-env.ts), as a deployed function finds AWS through its defaults.
    vi.stubEnv('METRICOPT_STORE', storeUrl);
    vi.stubEnv('METRICOPT_DLQ_URL', pair.dlqUrl);
    vi.stubEnv('METRICOPT_MAX_RECEIVE_COUNT', '3');
    vi.stubEnv('METRICOPT_EVALUATOR_MODULES', `${join(modules, 'quarter.mjs')},${join(modules, 'down.mjs')}`);
    vi.stubEnv('METRICOPT_S3_ENDPOINT', endpoint());
    vi.stubEnv('METRICOPT_S3_FORCE_PATH_STYLE', 'true');
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    const lambda = await import('../../functions/evaluate-metric/lambda.js');
    handler = (event) => lambda.handler(event, {} as never);
    store = await openObjectStore(storeUrl, { s3Endpoint: endpoint(), s3ForcePathStyle: true });
    queue = await openQueue(pair.url, { deadLetterQueueUrl: pair.dlqUrl, sqsEndpoint: endpoint() });
  });
  afterAll(() => vi.unstubAllEnvs());

  it('deletes what succeeded, redelivers reported failures, and ends a poison message and a failing evaluator in the DLQ, where the depth alarm fires', async () => {
    const body = async (key: string, evaluator: string) =>
      JSON.stringify(
        await messageFor(store, { jobId: 'job-lambda', key, evaluator, scores: new Float32Array(50), labels }),
      );
    await queue.send([await body('good', 'quarter'), 'not json', await body('failing', 'down')]);
    const poller = startSqsPoller({ queue, queueArn: pair.arn, handler, waitMs: 1000 });

    // Settled: both bad messages in the DLQ, nothing left on the main queue.
    const deadline = Date.now() + 60_000;
    let counts = await queue.counts();
    while (Date.now() < deadline && (counts.deadLetters < 2 || counts.visible + counts.inFlight > 0)) {
      await new Promise((r) => setTimeout(r, 500));
      counts = await queue.counts();
    }
    const stats = await poller.stop();

    expect(counts).toEqual({ visible: 0, inFlight: 0, deadLetters: 2 });
    const good = JSON.parse(new TextDecoder().decode(await store.get(resultKey('job-lambda', 'good'))));
    expect(good.outcome).toMatchObject({ ok: true, value: 0.25, normalised: 0.75 });
    const failing = JSON.parse(new TextDecoder().decode(await store.get(resultKey('job-lambda', 'failing'))));
    expect(failing.outcome.code).toBe('EVALUATOR_FAILED');
    // The failing evaluator was reported on deliveries 1 and 2 and dead-lettered on the 3rd.
    expect(stats.reportedFailures).toBe(2);
    expect(stats.deleted).toBe(3);
    expect(stats.errors).toBe(0);
    const letters = new Map<string, string | undefined>();
    for (let i = 0; i < 20 && letters.size < 2; i++) {
      for (const d of await queue.listDeadLetters(10)) letters.set(d.body, d.reason);
    }
    expect(letters.get('not json')).toMatch(/^MESSAGE_INVALID: /);
    const failingReason = [...letters.entries()].find(([b]) => b.includes('"failing"'))?.[1];
    expect(failingReason).toBe("EVALUATOR_FAILED: evaluator 'down' threw: upstream 503 (after 3 deliveries)");

    // The alarm the stack puts on the DLQ's depth: any visible message is an ALARM.
    const cloudwatch = new CloudWatchClient({ endpoint: endpoint(), region: 'us-east-1' });
    const alarmName = `${pair.dlqName}-depth`;
    await cloudwatch.send(
      new PutMetricAlarmCommand({
        AlarmName: alarmName,
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: pair.dlqName }],
        Statistic: 'Maximum',
        Period: 10,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      }),
    );
    const alarmDeadline = Date.now() + 90_000;
    let state: string | undefined;
    while (Date.now() < alarmDeadline && state !== 'ALARM') {
      await new Promise((r) => setTimeout(r, 1000));
      const out = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: [alarmName] }));
      state = out.MetricAlarms?.[0]?.StateValue;
    }
    expect(state).toBe('ALARM');
    cloudwatch.destroy();
  });
});
