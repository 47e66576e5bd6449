import { z } from 'zod';
import { type EvaluatorSpec, webhookListSchema, webhookSpecs } from '../../shared/schemas/evaluation.js';
import { objectStoreEnv, positiveInt } from '../../shared/schemas/env.js';

const commaList = z
  .string()
  .default('')
  .transform((s) =>
    s
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== ''),
  );

/**
 * Evaluator-worker configuration from the environment, parsed once per container.
 * - METRICOPT_STORE: s3://bucket/prefix (or a folder) where predictions, labels and results live (required)
 * - METRICOPT_DLQ_URL: the queue's dead-letter queue URL, for messages dead-lettered at once (required)
 * - METRICOPT_MAX_RECEIVE_COUNT: the redrive policy's maxReceiveCount (default 3)
 * - METRICOPT_EVALUATOR_TIMEOUT_MS: limit on one evaluator call (default 60000; keep the
 *   function timeout and the queue's visibility timeout above it)
 * - METRICOPT_EVALUATOR_MODULES: comma-separated paths of user evaluator modules bundled with the function
 * - METRICOPT_WEBHOOKS: JSON array of { name, url, direction, timeoutMs?, version? }
 * - METRICOPT_WEBHOOK_SECRET: HMAC key for the webhooks (required when there are any)
 * - METRICOPT_S3_ENDPOINT, METRICOPT_S3_FORCE_PATH_STYLE (LocalStack, MinIO)
 */
export const evaluateMetricEnvSchema = z
  .object({
    METRICOPT_STORE: z.string({ error: 'METRICOPT_STORE is required' }).min(1, 'METRICOPT_STORE is required'),
    METRICOPT_DLQ_URL: z.url({ error: 'METRICOPT_DLQ_URL is required (the dead-letter queue URL)' }),
    METRICOPT_MAX_RECEIVE_COUNT: positiveInt('METRICOPT_MAX_RECEIVE_COUNT', 3),
    METRICOPT_EVALUATOR_TIMEOUT_MS: positiveInt('METRICOPT_EVALUATOR_TIMEOUT_MS', 60_000),
    METRICOPT_EVALUATOR_MODULES: commaList,
    METRICOPT_WEBHOOKS: webhookListSchema,
    METRICOPT_WEBHOOK_SECRET: z.string().optional(),
    ...objectStoreEnv,
  })
  .superRefine((env, ctx) => {
    if (env.METRICOPT_WEBHOOKS.length > 0 && !env.METRICOPT_WEBHOOK_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['METRICOPT_WEBHOOK_SECRET'],
        message: 'METRICOPT_WEBHOOK_SECRET is required when METRICOPT_WEBHOOKS lists any webhook',
      });
    }
  });
export type EvaluateMetricEnv = z.infer<typeof evaluateMetricEnvSchema>;

export interface EvaluateMetricConfig {
  env: EvaluateMetricEnv;
  evaluators: EvaluatorSpec[];
}

/** Parses the environment or throws one line naming the first problem. */
export function parseEvaluateMetricEnv(env: Record<string, string | undefined>): EvaluateMetricConfig {
  const parsed = evaluateMetricEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`evaluate-metric config: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  const evaluators: EvaluatorSpec[] = parsed.data.METRICOPT_EVALUATOR_MODULES.map((path) => ({ kind: 'module', path }));
  evaluators.push(...webhookSpecs(parsed.data.METRICOPT_WEBHOOKS, parsed.data.METRICOPT_WEBHOOK_SECRET));
  return { env: parsed.data, evaluators };
}
