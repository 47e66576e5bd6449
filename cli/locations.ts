import { resolve } from 'node:path';
import { z } from 'zod';
import { defaultDataDir } from '../shared/adapters/dataset.fs.js';
import { objectStoreEnv } from '../shared/schemas/env.js';
import type { ObjectStoreOptions } from '../shared/adapters/from-url.js';
import { CliError } from './errors.js';

const envSchema = z.object(objectStoreEnv);

/** S3 endpoint settings for `--store s3://...` from METRICOPT_S3_ENDPOINT / METRICOPT_S3_FORCE_PATH_STYLE. */
export function storeOptionsFromEnv(env: Record<string, string | undefined> = process.env): ObjectStoreOptions {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) throw new CliError('CONFIG', parsed.error.issues[0]?.message ?? 'invalid S3 settings');
  return { s3Endpoint: parsed.data.METRICOPT_S3_ENDPOINT, s3ForcePathStyle: parsed.data.METRICOPT_S3_FORCE_PATH_STYLE };
}

/** The data cache folder (fetched image sets): METRICOPT_DATA_DIR, else `.cache/data` in the package root. */
export function dataDirFromEnv(env: Record<string, string | undefined> = process.env): string {
  const dir = env.METRICOPT_DATA_DIR;
  return dir !== undefined && dir !== '' ? resolve(dir) : defaultDataDir();
}
