import { type ObjectStoreOptions, storeOptionsOf } from '../shared/adapters/from-url.js';
import { cliEnv } from './env.js';

/** S3 endpoint settings for `--store s3://...` from METRICOPT_S3_ENDPOINT / METRICOPT_S3_FORCE_PATH_STYLE. */
export function storeOptionsFromEnv(): ObjectStoreOptions {
  return storeOptionsOf(cliEnv());
}
