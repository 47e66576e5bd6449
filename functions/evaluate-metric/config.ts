import { z } from 'zod';
import { type EvaluatorSpec, webhookListSchema, webhookSpecs } from '../../shared/schemas/evaluation.js';
import { objectStoreEnv, positiveInt } from '../../shared/schemas/env.js';
import { issueLines } from '../../shared/schemas/zod-issue.js';

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
 * - METRICOPT_WEBHOOK_SECRET_ARN: the Secrets Manager secret holding the webhooks' HMAC key (deployed), or
 * - METRICOPT_WEBHOOK_SECRET: the key itself (local runs); one of them is required when there are webhooks
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
    METRICOPT_WEBHOOK_SECRET_ARN: z
      .string()
      .regex(/^arn:aws[\w-]*:secretsmanager:/, 'METRICOPT_WEBHOOK_SECRET_ARN must be a Secrets Manager secret ARN')
      .optional(),
    ...objectStoreEnv,
  })
  .superRefine((env, ctx) => {
    if (env.METRICOPT_WEBHOOKS.length > 0 && !env.METRICOPT_WEBHOOK_SECRET && !env.METRICOPT_WEBHOOK_SECRET_ARN) {
      ctx.addIssue({
        code: 'custom',
        path: ['METRICOPT_WEBHOOK_SECRET'],
        message:
          'METRICOPT_WEBHOOK_SECRET_ARN (or METRICOPT_WEBHOOK_SECRET) is required when METRICOPT_WEBHOOKS lists any webhook',
      });
    }
  });
export type EvaluateMetricEnv = z.infer<typeof evaluateMetricEnvSchema>;

export interface EvaluateMetricConfig {
  env: EvaluateMetricEnv;
  evaluators: EvaluatorSpec[];
}

/**
 * Parses the environment or throws one line naming the first problem. `webhookSecret` is the key
 * read from METRICOPT_WEBHOOK_SECRET_ARN by the caller (lambda.ts), when that is how it is given.
 */
export function parseEvaluateMetricEnv(
  env: Record<string, string | undefined>,
  webhookSecret?: string,
): EvaluateMetricConfig {
  const parsed = evaluateMetricEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`evaluate-metric config: ${issueLines(parsed.error)}`);
  }
  const evaluators: EvaluatorSpec[] = parsed.data.METRICOPT_EVALUATOR_MODULES.map((path) => ({ kind: 'module', path }));
  const secret = webhookSecret ?? parsed.data.METRICOPT_WEBHOOK_SECRET;
  if (parsed.data.METRICOPT_WEBHOOKS.length > 0 && !secret) {
    throw new Error(
      'evaluate-metric config: METRICOPT_WEBHOOK_SECRET_ARN is set but its secret was not read (pass it to parseEvaluateMetricEnv)',
    );
  }
  evaluators.push(...webhookSpecs(parsed.data.METRICOPT_WEBHOOKS, secret));
  return { env: parsed.data, evaluators };
}
