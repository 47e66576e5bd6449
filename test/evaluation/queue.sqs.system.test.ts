import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { SqsQueue } from '../../shared/adapters/queue.sqs.js';
import { mcr } from '../../shared/metrics/builtins.js';
import { runEvaluationWorker } from '../../shared/use-cases/evaluation/evaluate-request.js';
import { randomLabels, randomQueries, workbench } from './fixtures.js';
import { describeQueueContract } from './queue.contract.js';
import { motoAvailable, startMoto } from '../helpers/moto.js';

/**
 * The SQS adapter against moto's SQS emulator, started and stopped here. Skipped, saying so,
 * where `moto_server` is not installed.
 */
if (!motoAvailable) {
  console.warn(
    'queue.sqs.system.test: moto_server is not installed (pip install "moto[server]"); SQS contract skipped',
  );
}

let stopMoto: (() => void) | undefined;
let endpoint = '';
let client: SQSClient;
let counter = 0;

describe.skipIf(!motoAvailable)('SqsQueue on moto', () => {
  beforeAll(async () => {
    const moto = await startMoto();
    stopMoto = moto.stop;
    endpoint = moto.endpoint;
    client = new SQSClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
  });

  afterAll(() => {
    stopMoto?.();
    client?.destroy();
  });

  it('carries queued metric queries to a worker loop and back with the in-process values', async () => {
    const { queue: sqs } = await makeSqsQueue();
    const { store, deps } = await workbench([]);
    const oracle = new QueuedMetricOracle({ queue: sqs, store, metric: { name: 'mcr', direction: 'minimize' } });
    const direct = new InProcessMetricOracle(mcr);
    const labels = randomLabels(300, 1);
    for (const o of [oracle, direct]) await o.registerSplit('val', { labels, classes: 2 });
    const queries = randomQueries('job-sqs', 300, 12, 2);
    const stop = new AbortController();
    const worker = runEvaluationWorker(deps, { queue: sqs, batchSize: 10, waitMs: 1000, signal: stop.signal });

    const viaSqs = await oracle.evaluate(queries);
    stop.abort();
    await worker;

    const values = (rs: typeof viaSqs) => rs.map((r) => (r.ok ? r.value.value : r.error.code));
    expect(values(viaSqs)).toEqual(values(await direct.evaluate(queries)));
  });

  describeQueueContract('SqsQueue (moto)', makeSqsQueue);
});

/** A fresh queue with its DLQ, redrive after 2 receives, visibility 1 s. */
async function makeSqsQueue() {
  const name = `evals-${process.pid}-${counter++}`;
  const dlq = await client.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const dlqArn = (
    await client.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes?.QueueArn;
  const main = await client.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: '1',
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 2 }),
      },
    }),
  );
  return {
    queue: new SqsQueue({ client, queueUrl: main.QueueUrl as string, deadLetterQueueUrl: dlq.QueueUrl as string }),
    visibilityTimeoutMs: 1000,
  };
}
