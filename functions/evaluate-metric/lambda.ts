import { Logger } from '@aws-lambda-powertools/logger';
import { hostname } from 'node:os';
import { openDeadLetterSender, openObjectStore, storeOptionsOf } from '../../shared/adapters/from-url.js';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { webhookEvaluatorOf } from '../../shared/adapters/evaluator.webhook.js';
import { createEvaluatorRegistry } from '../../shared/metrics/evaluator-registry.js';
import { readSecretString } from '../../shared/adapters/secret.secrets-manager.js';
import { parseEvaluateMetricEnv } from './config.js';
import { createEvaluateMetricHandler, type EvaluateMetricDeps } from './handler.js';

/**
 * The Lambda entry point (SQS event source with ReportBatchItemFailures). Configuration is
 * parsed and clients are built once per container, when the module loads.
 */
// The webhooks' HMAC key comes from Secrets Manager when METRICOPT_WEBHOOK_SECRET_ARN names it.
// (parseEvaluateMetricEnv checks the ARN's form; the key is read before it, once per container).
const secretArn = process.env.METRICOPT_WEBHOOK_SECRET_ARN;
const { env, evaluators } = parseEvaluateMetricEnv(
  process.env,
  secretArn?.startsWith('arn:') ? await readSecretString(secretArn) : undefined,
);
const logger = new Logger({ serviceName: 'metricopt-evaluate-metric' });

async function wire(): Promise<EvaluateMetricDeps> {
  const store = await openObjectStore(env.METRICOPT_STORE, storeOptionsOf(env));
  // User modules run in worker threads: the evaluator timeout then holds for synchronous code too.
  const registry = await createEvaluatorRegistry(evaluators, {
    loadModule: (path) => loadEvaluatorModuleInWorker(path),
    webhook: (spec) => webhookEvaluatorOf(spec),
  });
  if (!registry.ok) throw registry.error;
  const dlq = await openDeadLetterSender(env.METRICOPT_DLQ_URL);
  return {
    request: {
      store,
      registry: registry.value,
      workerId: `lambda:${hostname()}`,
      maxReceiveCount: env.METRICOPT_MAX_RECEIVE_COUNT,
      evaluatorTimeoutMs: env.METRICOPT_EVALUATOR_TIMEOUT_MS,
      logger,
    },
    deadLetter: (body, reason) => dlq.sendToDeadLetterQueue(body, reason),
    logger,
  };
}

export const handler = createEvaluateMetricHandler(await wire());
