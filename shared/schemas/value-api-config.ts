import { z } from 'zod';
import { objectStoreEnv, positiveInt } from './env.js';

/**
 * Settings of the value API that its entry points share (the Lambda's environment, parsed by
 * functions/value-api/config.ts; `metricopt serve`'s flags): defaults, the environment schema
 * and the stored form of an API key.
 */

/** Largest accepted request body (413 above). */
export const DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024;
/** Most rows in one predict/gradient batch. */
export const DEFAULT_MAX_ROWS = 1024;
/** How often the store is listed for new checkpoint versions. */
export const DEFAULT_REFRESH_MS = 1000;

/** An API key is configured as the lower-case hex SHA-256 of the key. */
export const API_KEY_HASH_PATTERN = /^[0-9a-f]{64}$/;

/**
 * What a key may do: `read` the value functions (list, describe, predict, gradient, guide),
 * `write` fit jobs (create, upload, start, cancel, read their status) and read job status.
 */
export type ApiScope = 'read' | 'write';
export const API_SCOPES: readonly ApiScope[] = ['read', 'write'];

/**
 * A configured key: its hash, optionally with its scopes, `<sha256hex>[:read|:write|:read+write]`;
 * without a suffix a key has both (the form before scopes existed).
 */
export const API_KEY_ENTRY_PATTERN = /^[0-9a-f]{64}(:(read|write|read\+write|write\+read))?$/;

/**
 * The configured key entries, however they are given (a comma-separated string: an environment
 * variable, a `-c` value; or a list: repeated flags, a JSON array): trimmed, lower-cased, empty
 * ones dropped, and the first that is not an entry (API_KEY_ENTRY_PATTERN), if any, for the
 * caller's message. The one parser of the Lambda's environment, `metricopt serve` and the CDK settings.
 */
export function parseApiKeyEntries(given: string | readonly string[]): { entries: string[]; invalid?: string } {
  const entries = (typeof given === 'string' ? given.split(',') : given)
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '');
  const invalid = entries.find((e) => !API_KEY_ENTRY_PATTERN.test(e));
  return invalid === undefined ? { entries } : { entries, invalid };
}

/** A configured key entry as its hash and scopes (the entry must match API_KEY_ENTRY_PATTERN). */
export function parseApiKeyEntry(entry: string): { hash: string; scopes: ReadonlySet<ApiScope> } {
  const [hash, scopes] = entry.toLowerCase().split(':') as [string, string | undefined];
  return { hash, scopes: new Set(scopes === undefined ? API_SCOPES : (scopes.split('+') as ApiScope[])) };
}

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
