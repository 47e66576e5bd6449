import { z } from 'zod';
import {
  parseApiKeyEntries,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ROWS,
  DEFAULT_REFRESH_MS,
} from '../../shared/schemas/value-api-config.js';
import { objectStoreEnv, positiveInt } from '../../shared/schemas/env.js';

/**
 * Value-API configuration from the environment, parsed once at start-up.
 * - METRICOPT_STORE: a folder or s3://bucket/prefix (required)
 * - METRICOPT_AUTH: api-key (default) | iam | none
 * - METRICOPT_API_KEY_HASHES: comma-separated SHA-256 hex hashes of the accepted keys (api-key mode),
 *   each optionally with its scopes: `<hash>:read`, `<hash>:write` (default: both)
 * - METRICOPT_MAX_BODY_BYTES, METRICOPT_MAX_ROWS, METRICOPT_REFRESH_MS
 * - METRICOPT_S3_ENDPOINT, METRICOPT_S3_FORCE_PATH_STYLE (LocalStack, MinIO)
 * - METRICOPT_JOBS_QUEUE (+ METRICOPT_JOBS_DLQ for SQS): fit jobs are started with a message
 *   there; unset, they run in the serving process
 */
export const valueApiEnvSchema = z
  .object({
    METRICOPT_STORE: z.string({ error: 'METRICOPT_STORE is required' }).min(1, 'METRICOPT_STORE is required'),
    METRICOPT_AUTH: z
      .enum(['api-key', 'iam', 'none'], { error: 'METRICOPT_AUTH must be api-key, iam or none' })
      .default('api-key'),
    METRICOPT_API_KEY_HASHES: z
      .string()
      .default('')
      .transform((s) => parseApiKeyEntries(s).entries)
      .refine((hs) => parseApiKeyEntries(hs).invalid === undefined, {
        error:
          'METRICOPT_API_KEY_HASHES must be comma-separated SHA-256 hex digests (64 hex characters each), each optionally with :read or :write',
      }),
    METRICOPT_MAX_BODY_BYTES: positiveInt('METRICOPT_MAX_BODY_BYTES', DEFAULT_MAX_BODY_BYTES),
    METRICOPT_MAX_ROWS: positiveInt('METRICOPT_MAX_ROWS', DEFAULT_MAX_ROWS),
    METRICOPT_REFRESH_MS: positiveInt('METRICOPT_REFRESH_MS', DEFAULT_REFRESH_MS),
    METRICOPT_JOBS_QUEUE: z.string().min(1).optional(),
    METRICOPT_JOBS_DLQ: z.string().min(1).optional(),
    ...objectStoreEnv,
  })
  .superRefine((env, ctx) => {
    if (env.METRICOPT_AUTH === 'api-key' && env.METRICOPT_API_KEY_HASHES.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['METRICOPT_API_KEY_HASHES'],
        message: 'METRICOPT_API_KEY_HASHES is required when METRICOPT_AUTH=api-key (or set METRICOPT_AUTH=iam|none)',
      });
    }
  });
export type ValueApiEnv = z.infer<typeof valueApiEnvSchema>;

/** Parses the environment or throws one line naming the first problem. */
export function parseValueApiEnv(env: Record<string, string | undefined>): ValueApiEnv {
  const parsed = valueApiEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`value-api config: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  return parsed.data;
}
