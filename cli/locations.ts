import { type ObjectStoreOptions, storeOptionsOf } from '../shared/adapters/from-url.js';
import { resolve } from 'node:path';
import { defaultDataDir } from '../shared/adapters/dataset.fs.js';
import { cliEnv } from './env.js';

/** S3 endpoint settings for `--store s3://...` from METRICOPT_S3_ENDPOINT / METRICOPT_S3_FORCE_PATH_STYLE. */
export function storeOptionsFromEnv(): ObjectStoreOptions {
  return storeOptionsOf(cliEnv());
}

/** The data cache folder (fetched image sets): METRICOPT_DATA_DIR, else `.cache/data` in the package root. */
export function dataDirFromEnv(): string {
  const dir = cliEnv().METRICOPT_DATA_DIR;
  return dir !== undefined && dir !== '' ? resolve(dir) : defaultDataDir();
}
