import { mkdtemp, rm } from 'node:fs/promises';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { saveCheckpoint } from '../../shared/storage/value-function-store.js';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { type MakeCheckpointOptions, makeCheckpoint } from '../helpers/make-checkpoint.js';

/** A temporary folder store holding the given checkpoints (saved in order, so versions count up). */
export async function tempStore(
  checkpoints: MakeCheckpointOptions[],
): Promise<{ dir: string; store: FsObjectStore; saved: ValueFunctionCheckpoint[]; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-value-api-'));
  const store = new FsObjectStore(dir);
  const saved: ValueFunctionCheckpoint[] = [];
  for (const options of checkpoints) {
    const { version: _, ...checkpoint } = makeCheckpoint(options);
    saved.push(await saveCheckpoint(store, checkpoint));
  }
  return { dir, store, saved, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const SECRET_KEY = 'mo_test_8f3a2c1d9e7b6a5f4c3d2e1f0a9b8c7d';

/** The value API on a free local port over `store`, open to SECRET_KEY, 1 MiB bodies, `maxRows` rows a request. */
export const startKeyedServer = (store: ObjectStore, maxRows: number): Promise<RunningServer> =>
  startValueApiServer({
    store,
    port: 0,
    auth: { mode: 'api-key', hashes: [hashApiKey(SECRET_KEY)] },
    maxBodyBytes: 1 << 20,
    maxRows,
    refreshMs: 1000,
  });

/** A Lambda function URL event (payload 2.0) for a JSON POST, signed by IAM when `iam`. */
export function urlEvent(path: string, body: unknown, iam: boolean): LambdaFunctionURLEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', host: 'abc.lambda-url.eu-west-1.on.aws' },
    body: JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc',
      domainName: 'abc.lambda-url.eu-west-1.on.aws',
      domainPrefix: 'abc',
      http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'r1',
      routeKey: '$default',
      stage: '$default',
      time: '27/Nov/2026:00:00:00 +0000',
      timeEpoch: 0,
      ...(iam
        ? {
            authorizer: {
              iam: {
                accessKey: 'AKIA',
                accountId: '123456789012',
                callerId: 'AIDA',
                cognitoIdentity: null,
                principalOrgId: null,
                userArn: 'arn:aws:iam::123456789012:user/trainer',
                userId: 'AIDA',
              },
            },
          }
        : {}),
    },
  } as LambdaFunctionURLEvent;
}
