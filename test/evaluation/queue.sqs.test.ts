import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { SqsQueue } from '../../shared/adapters/queue.sqs.js';
import { mcr } from '../../shared/metrics/builtins.js';
import { runEvaluationWorker } from '../../shared/use-cases/evaluate-request.js';
import { randomLabels, randomQueries, workbench } from './fixtures.js';
import { describeQueueContract } from './queue.contract.js';

/**
 * The SQS adapter against moto's SQS emulator, started and stopped here. Skipped, saying so,
 * where `moto_server` is not installed.
 */
const motoAvailable = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).status === 0;
if (!motoAvailable) {
  console.warn('queue.sqs.test: moto_server is not installed (pip install "moto[server]"); SQS contract skipped');
}

let moto: ChildProcess | undefined;
let endpoint = '';
let client: SQSClient;
let counter = 0;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

describe.skipIf(!motoAvailable)('SqsQueue on moto', () => {
  beforeAll(async () => {
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    client = new SQSClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await fetch(`${endpoint}/moto-api/`);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`moto_server did not start on ${endpoint}: ${e}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  });

  afterAll(() => {
    moto?.kill('SIGTERM');
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
