import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectStore } from '../ports/object-store.port.js';
import type { Queue } from '../ports/queue.port.js';
import { FsObjectStore } from './object-store.fs.js';
import { LocalQueue, type LocalQueueOptions } from './queue.local.js';

/**
 * The composition root for storage and queues: every entry point (CLI, Lambda functions, the
 * training container) turns a location into an adapter here, and hands the adapter to a use-case.
 *
 *   DIR, file:///abs/dir       -> the embedded folder store / local queue
 *   s3://bucket/prefix         -> S3 (object store)
 *   https://sqs.../queue-name  -> SQS (queue; needs the dead-letter queue URL)
 *
 * The AWS SDK adapters are imported on first use, so the embedded path never loads the SDK, and
 * their clients are created once per process and shared.
 */
export interface ObjectStoreOptions extends ConnectionOptions {
  /** S3 endpoint override (LocalStack, MinIO). */
  s3Endpoint?: string | undefined;
  s3ForcePathStyle?: boolean | undefined;
  region?: string | undefined;
}

/**
 * The object-store settings of an entry point's parsed environment (`objectStoreEnv`,
 * shared/schemas/env.ts): METRICOPT_S3_ENDPOINT and METRICOPT_S3_FORCE_PATH_STYLE.
 */
export function storeOptionsOf(env: {
  METRICOPT_S3_ENDPOINT?: string | undefined;
  METRICOPT_S3_FORCE_PATH_STYLE?: boolean | undefined;
}): ObjectStoreOptions {
  return { s3Endpoint: env.METRICOPT_S3_ENDPOINT, s3ForcePathStyle: env.METRICOPT_S3_FORCE_PATH_STYLE };
}

export interface QueueOptions extends LocalQueueOptions, ConnectionOptions {
  /** SQS: the dead-letter queue of the redrive policy (required for an SQS URL). */
  deadLetterQueueUrl?: string | undefined;
  /** SQS endpoint override (LocalStack). */
  sqsEndpoint?: string | undefined;
  region?: string | undefined;
}

/**
 * How an SDK client treats a hung connection: a connect or a silence longer than `timeoutMs`
 * fails the attempt, which the SDK retries (up to `maxAttempts` in all). Without a timeout a
 * request to an endpoint that stops answering waits forever. The default, 30 s, stays above
 * SQS's longest long poll (20 s); the SDK's own default attempt count is 3.
 */
export interface ConnectionOptions {
  timeoutMs?: number | undefined;
  maxAttempts?: number | undefined;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function connectionConfig(options: ConnectionOptions) {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    requestHandler: { connectionTimeout: timeoutMs, socketTimeout: timeoutMs },
    ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
  };
}

export type LocationKind = 'folder' | 's3' | 'sqs';

/** What a location names, without opening it. */
export function locationKind(url: string): LocationKind {
  if (url.startsWith('s3://')) return 's3';
  if (/^https?:\/\//.test(url)) return 'sqs';
  return 'folder';
}

function folderOf(url: string): string {
  if (url.startsWith('file://')) return fileURLToPath(url);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new Error(`location '${url}' is not a folder, file://, s3:// or SQS URL`);
  }
  return resolve(url);
}

const clients = new Map<string, unknown>();
async function shared<T>(key: string, make: () => Promise<T>): Promise<T> {
  let c = clients.get(key) as T | undefined;
  if (c === undefined) {
    c = await make();
    clients.set(key, c);
  }
  return c;
}

export async function openObjectStore(url: string, options: ObjectStoreOptions = {}): Promise<ObjectStore> {
  if (locationKind(url) === 's3') {
    const { S3ObjectStore, parseS3Url } = await import('./object-store.s3.js');
    const { S3Client } = await import('@aws-sdk/client-s3');
    const config = {
      ...(options.region ? { region: options.region } : {}),
      ...(options.s3Endpoint ? { endpoint: options.s3Endpoint } : {}),
      ...(options.s3ForcePathStyle ? { forcePathStyle: true } : {}),
      ...connectionConfig(options),
    };
    const client = await shared(`s3:${JSON.stringify(config)}`, async () => new S3Client(config));
    return new S3ObjectStore({ ...parseS3Url(url), client });
  }
  if (locationKind(url) === 'sqs') throw new Error(`object store location '${url}' is a queue URL`);
  return new FsObjectStore(folderOf(url));
}

/**
 * The object store a `--store`/METRICOPT_STORE names, with one meaning for every command
 * (serve, fit, jobs status) and the Lambda: a folder may also be the output of `metricopt demo
 * --out DIR`, whose store is DIR/store (used when DIR/store/value-functions exists).
 */
export function openStoreLocation(spec: string, options: ObjectStoreOptions = {}): Promise<ObjectStore> {
  if (locationKind(spec) === 'folder' && !spec.startsWith('file://')) {
    const nested = join(spec, 'store');
    if (existsSync(join(nested, 'value-functions'))) return openObjectStore(nested, options);
  }
  return openObjectStore(spec, options);
}

async function sqsClient(options: QueueOptions) {
  const { SQSClient } = await import('@aws-sdk/client-sqs');
  const config = {
    ...(options.region ? { region: options.region } : {}),
    ...(options.sqsEndpoint ? { endpoint: options.sqsEndpoint } : {}),
    ...connectionConfig(options),
  };
  return shared(`sqs:${JSON.stringify(config)}`, async () => new SQSClient(config));
}

export async function openQueue(url: string, options: QueueOptions = {}): Promise<Queue> {
  const kind = locationKind(url);
  if (kind === 's3') throw new Error(`queue location '${url}' is an object store`);
  if (kind === 'sqs') {
    if (!options.deadLetterQueueUrl) throw new Error(`queue '${url}': an SQS queue needs its dead-letter queue URL`);
    const { SqsQueue } = await import('./queue.sqs.js');
    return new SqsQueue({
      client: await sqsClient(options),
      queueUrl: url,
      deadLetterQueueUrl: options.deadLetterQueueUrl,
    });
  }
  const local: LocalQueueOptions = {};
  if (options.visibilityTimeoutMs !== undefined) local.visibilityTimeoutMs = options.visibilityTimeoutMs;
  if (options.maxReceiveCount !== undefined) local.maxReceiveCount = options.maxReceiveCount;
  return new LocalQueue(folderOf(url), local);
}

/** The send half of dead-lettering on SQS, for a Lambda whose deliveries the runtime deletes. */
export async function openDeadLetterSender(
  deadLetterQueueUrl: string,
  options: Omit<QueueOptions, 'deadLetterQueueUrl'> = {},
): Promise<{ sendToDeadLetterQueue(body: string, reason: string): Promise<void> }> {
  const { SqsQueue } = await import('./queue.sqs.js');
  return new SqsQueue({ client: await sqsClient(options), queueUrl: deadLetterQueueUrl, deadLetterQueueUrl });
}
