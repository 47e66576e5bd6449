import { Logger } from '@aws-lambda-powertools/logger';
import { handle } from 'hono/aws-lambda';
import { openQueue, openStoreLocation, storeOptionsOf } from '../../shared/adapters/from-url.js';
import { parseValueApiEnv } from './config.js';
import { buildValueApi } from './service.js';

/**
 * The value API as a Lambda handler (function URL or API Gateway). Configuration is parsed
 * once per container at start-up; the store client and the compiled checkpoints live as long
 * as the container.
 */
const env = parseValueApiEnv(process.env);
const logger = new Logger({ serviceName: 'metricopt-value-api' });

const { app } = buildValueApi({
  store: await openStoreLocation(env.METRICOPT_STORE, storeOptionsOf(env)),
  auth:
    env.METRICOPT_AUTH === 'api-key'
      ? { mode: 'api-key', hashes: env.METRICOPT_API_KEY_HASHES }
      : { mode: env.METRICOPT_AUTH },
  maxBodyBytes: env.METRICOPT_MAX_BODY_BYTES,
  maxRows: env.METRICOPT_MAX_ROWS,
  refreshMs: env.METRICOPT_REFRESH_MS,
  // The API's entries ({level, msg, ...fields}) through Powertools, as the evaluator Lambda logs.
  log: ({ level, msg, ...fields }) =>
    logger[level === 'error' || level === 'warn' ? level : 'info'](String(msg), fields),
  ...(env.METRICOPT_JOBS_QUEUE
    ? { jobsQueue: await openQueue(env.METRICOPT_JOBS_QUEUE, { deadLetterQueueUrl: env.METRICOPT_JOBS_DLQ }) }
    : {}),
});

export const handler = handle(app);
