import { z } from 'zod';
import { objectStoreEnv } from '../shared/schemas/env.js';
import { type ObjectStoreOptions, storeOptionsOf } from '../shared/adapters/from-url.js';
import { CliError } from './errors.js';

const envSchema = z.object(objectStoreEnv);

/** S3 endpoint settings for `--store s3://...` from METRICOPT_S3_ENDPOINT / METRICOPT_S3_FORCE_PATH_STYLE. */
export function storeOptionsFromEnv(env: Record<string, string | undefined> = process.env): ObjectStoreOptions {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) throw new CliError('CONFIG', parsed.error.issues[0]?.message ?? 'invalid S3 settings');
  return storeOptionsOf(parsed.data);
}
