import { Logger } from '@aws-lambda-powertools/logger';
import { SQSClient } from '@aws-sdk/client-sqs';
import { hostname } from 'node:os';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { parseS3Url, S3ObjectStore } from '../../shared/adapters/object-store.s3.js';
import { SqsQueue } from '../../shared/adapters/queue.sqs.js';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { webhookEvaluatorOf } from '../../shared/adapters/evaluator.webhook.js';
import { createEvaluatorRegistry } from '../../shared/metrics/evaluator-registry.js';
import { parseEvaluateMetricEnv } from './config.js';
import { createEvaluateMetricHandler, type EvaluateMetricDeps } from './handler.js';

/**
 * The Lambda entry point (SQS event source with ReportBatchItemFailures). Configuration is
 * parsed and clients are built once per container, when the module loads.
 */
const { env, evaluators } = parseEvaluateMetricEnv(process.env);
const logger = new Logger({ serviceName: 'metricopt-evaluate-metric' });

async function wire(): Promise<EvaluateMetricDeps> {
  const store = env.METRICOPT_STORE.startsWith('s3://')
    ? new S3ObjectStore({
        ...parseS3Url(env.METRICOPT_STORE),
        ...(env.METRICOPT_S3_ENDPOINT ? { endpoint: env.METRICOPT_S3_ENDPOINT } : {}),
        forcePathStyle: env.METRICOPT_S3_FORCE_PATH_STYLE,
      })
    : new FsObjectStore(env.METRICOPT_STORE);
  // User modules run in worker threads: the evaluator timeout then holds for synchronous code too.
  const registry = await createEvaluatorRegistry(evaluators, {
    loadModule: (path) => loadEvaluatorModuleInWorker(path),
    webhook: (spec) => webhookEvaluatorOf(spec),
  });
  if (!registry.ok) throw registry.error;
  const dlq = new SqsQueue({
    client: new SQSClient({}),
    queueUrl: env.METRICOPT_DLQ_URL,
    deadLetterQueueUrl: env.METRICOPT_DLQ_URL,
  });
  return {
    request: {
      store,
      registry: registry.value,
      workerId: `lambda:${hostname()}`,
      maxReceiveCount: env.METRICOPT_MAX_RECEIVE_COUNT,
      evaluatorTimeoutMs: env.METRICOPT_EVALUATOR_TIMEOUT_MS,
      log: (event, fields) => logger.warn(event, fields),
    },
    deadLetter: (body, reason) => dlq.sendToDeadLetterQueue(body, reason),
    logger,
  };
}

export const handler = createEvaluateMetricHandler(await wire());
