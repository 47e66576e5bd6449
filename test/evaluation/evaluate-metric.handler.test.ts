import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { parseEvaluateMetricEnv } from '../../functions/evaluate-metric/config.js';
import { createEvaluateMetricHandler } from '../../functions/evaluate-metric/handler.js';
import { resultKey } from '../../shared/storage/layout.js';
import { countingEvaluator, errorRate, messageFor, randomLabels, tempDir, workbench } from './fixtures.js';

const context = { functionName: 'evaluate-metric', awsRequestId: 'req-1' } as unknown as Context;

function record(messageId: string, body: string, receiveCount = 1): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body,
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: '1700000000000',
      SenderId: 'trainer',
      ApproximateFirstReceiveTimestamp: '1700000000001',
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:evaluations',
    awsRegion: 'eu-west-1',
  };
}

async function setup() {
  const flaky = countingEvaluator('flaky', () => {
    throw new Error('upstream 503');
  });
  const good = countingEvaluator('good', errorRate);
  const bench = await workbench([flaky, good]);
  const deadLetters: Array<{ body: string; reason: string }> = [];
  const handler = createEvaluateMetricHandler({
    request: bench.deps,
    deadLetter: async (body, reason) => {
      deadLetters.push({ body, reason });
    },
    logger: new Logger({ serviceName: 'test', logLevel: 'SILENT' }),
  });
  const labels = randomLabels(100, 1);
  const msg = async (key: string, evaluator: string) =>
    JSON.stringify(
      await messageFor(bench.store, { jobId: 'job-l', key, evaluator, scores: new Float32Array(100), labels }),
    );
  return { ...bench, flaky, good, handler, deadLetters, msg };
}

describe('createEvaluateMetricHandler', () => {
  it('reports only the failing record in batchItemFailures; its batch-mates succeed', async () => {
    const { handler, msg, store, good } = await setup();
    const event: SQSEvent = {
      Records: [
        record('m1', await msg('k1', 'good')),
        record('m2', await msg('k2', 'flaky')),
        record('m3', await msg('k3', 'good')),
      ],
    };

    const response = await handler(event, context);

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm2' }] });
    expect(good.calls).toBe(2);
    expect(await store.get(resultKey('job-l', 'k1'))).toBeDefined();
    expect(await store.get(resultKey('job-l', 'k2'))).toBeUndefined();
  });

  it('sends a malformed message and an unknown evaluator straight to the DLQ, failing nothing in the batch', async () => {
    const { handler, msg, deadLetters } = await setup();
    const event: SQSEvent = {
      Records: [
        record('m1', 'not json'),
        record('m2', await msg('k2', 'no-such-metric')),
        record('m3', await msg('k3', 'good')),
      ],
    };

    const response = await handler(event, context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(deadLetters.map((d) => d.reason.split(':')[0])).toEqual(['MESSAGE_INVALID', 'UNKNOWN_METRIC']);
    expect(deadLetters[0]?.body).toBe('not json');
  });

  it('on the last allowed delivery records the failure and dead-letters instead of failing again', async () => {
    const { handler, msg, store, deadLetters } = await setup();
    const event: SQSEvent = { Records: [record('m1', await msg('k1', 'flaky'), 3)] };

    const response = await handler(event, context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]?.reason).toBe("EVALUATOR_FAILED: evaluator 'flaky' threw: upstream 503 (after 3 deliveries)");
    const result = JSON.parse(new TextDecoder().decode(await store.get(resultKey('job-l', 'k1'))));
    expect(result.outcome.code).toBe('EVALUATOR_FAILED');
  });

  it('acknowledges a redelivered message whose result exists without running the evaluator again', async () => {
    const { handler, msg, good } = await setup();
    const body = await msg('k1', 'good');

    await handler({ Records: [record('m1', body)] }, context);
    const again = await handler({ Records: [record('m1', body, 2)] }, context);

    expect(again).toEqual({ batchItemFailures: [] });
    expect(good.calls).toBe(1);
  });
});

describe('lambda.handler (the deployed entry point, wired from the environment)', () => {
  it('evaluates a synthetic SQS event against a folder store with a user module from METRICOPT_EVALUATOR_MODULES', async () => {
    const { store } = await workbench([]);
    const dir = await tempDir();
    const modulePath = join(dir, 'always-quarter.mjs');
    await writeFile(
      modulePath,
      "export default { name: 'always-quarter', direction: 'maximize', evaluate: () => 0.25 };",
    );
    const body = JSON.stringify(
      await messageFor(store, {
        jobId: 'job-lambda',
        key: 'k1',
        evaluator: 'always-quarter',
        scores: new Float32Array(10),
        labels: randomLabels(10, 1),
      }),
    );
    vi.stubEnv('METRICOPT_STORE', store.root);
    vi.stubEnv('METRICOPT_DLQ_URL', 'https://sqs.eu-west-1.amazonaws.com/123456789012/evaluations-dlq');
    vi.stubEnv('METRICOPT_EVALUATOR_MODULES', modulePath);
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');

    const { handler } = await import('../../functions/evaluate-metric/lambda.js');
    const response = await handler({ Records: [record('m1', body)] }, context);

    expect(response).toEqual({ batchItemFailures: [] });
    const result = JSON.parse(new TextDecoder().decode(await store.get(resultKey('job-lambda', 'k1'))));
    expect(result.outcome).toMatchObject({ ok: true, value: 0.25, normalised: 0.75, direction: 'maximize' });
    vi.unstubAllEnvs();
  });
});

describe('parseEvaluateMetricEnv', () => {
  const base = {
    METRICOPT_STORE: 's3://bucket/metricopt',
    METRICOPT_DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/1/dlq',
  };

  it('reads modules and webhooks into evaluator specs, with defaults', () => {
    const { env, evaluators } = parseEvaluateMetricEnv({
      ...base,
      METRICOPT_EVALUATOR_MODULES: '/opt/metrics/fraud.mjs, /opt/metrics/churn.mjs',
      METRICOPT_WEBHOOKS: '[{"name":"partner","url":"https://m.example.com/score","direction":"maximize"}]',
      METRICOPT_WEBHOOK_SECRET: 'a-secret-of-16-chars-or-more',
    });
    expect(env.METRICOPT_MAX_RECEIVE_COUNT).toBe(3);
    expect(env.METRICOPT_EVALUATOR_TIMEOUT_MS).toBe(60_000);
    expect(evaluators).toEqual([
      { kind: 'module', path: '/opt/metrics/fraud.mjs' },
      { kind: 'module', path: '/opt/metrics/churn.mjs' },
      {
        kind: 'webhook',
        name: 'partner',
        url: 'https://m.example.com/score',
        direction: 'maximize',
        secret: 'a-secret-of-16-chars-or-more',
        timeoutMs: 10_000,
      },
    ]);
  });

  it.each([
    [
      {},
      'evaluate-metric config: METRICOPT_STORE is required; METRICOPT_DLQ_URL is required (the dead-letter queue URL)',
    ],
    [
      { ...base, METRICOPT_MAX_RECEIVE_COUNT: 'x' },
      'evaluate-metric config: METRICOPT_MAX_RECEIVE_COUNT must be a positive integer',
    ],
    [
      { ...base, METRICOPT_WEBHOOKS: '[{"name":"p","url":"https://x.example.com","direction":"maximize"}]' },
      'evaluate-metric config: METRICOPT_WEBHOOK_SECRET_ARN (or METRICOPT_WEBHOOK_SECRET) is required when METRICOPT_WEBHOOKS lists any webhook',
    ],
    [{ ...base, METRICOPT_WEBHOOKS: '{' }, 'evaluate-metric config: METRICOPT_WEBHOOKS must be a JSON array'],
  ])('fails with one line naming the variable (%#)', (env, message) => {
    expect(() => parseEvaluateMetricEnv(env)).toThrow(message);
  });
});
