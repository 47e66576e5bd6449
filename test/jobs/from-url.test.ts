import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';

const loaded = vi.hoisted(() => ({ s3: false, sqs: false }));
vi.mock('@aws-sdk/client-s3', async (importOriginal) => {
  loaded.s3 = true;
  return await importOriginal();
});
vi.mock('@aws-sdk/client-sqs', async (importOriginal) => {
  loaded.sqs = true;
  return await importOriginal();
});

const { locationKind, openDeadLetterSender, openObjectStore, openQueue } = await import(
  '../../shared/adapters/from-url.js'
);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-from-url-'));
});

describe('openObjectStore / openQueue', () => {
  it('opens a folder and its file:// URL as the same embedded store, without loading the AWS SDK', async () => {
    const a = await openObjectStore(join(dir, 'store'));
    const b = await openObjectStore(pathToFileURL(join(dir, 'store')).href);
    expect(a.location).toBe(b.location);
    await a.put('x/y.json', '{}');
    expect(new TextDecoder().decode(await b.get('x/y.json'))).toBe('{}');
    const q = await openQueue(join(dir, 'queue'), { maxReceiveCount: 2 });
    expect(q.location).toBe(pathToFileURL(join(dir, 'queue')).href);
    expect(await q.send(['hello'])).toHaveLength(1);
    expect(loaded).toEqual({ s3: false, sqs: false });
  });

  it('opens s3://bucket/prefix on S3 and an SQS URL on SQS, loading each SDK on first use', async () => {
    const s = await openObjectStore('s3://my-bucket/jobs/a', { s3Endpoint: 'http://127.0.0.1:1', region: 'us-east-1' });
    expect(s.location).toBe('s3://my-bucket/jobs/a/');
    expect(loaded.s3).toBe(true);
    const url = 'https://sqs.us-east-1.amazonaws.com/000000000000/evals';
    const q = await openQueue(url, { deadLetterQueueUrl: `${url}-dlq`, region: 'us-east-1' });
    expect(q.location).toBe(url);
    expect(loaded.sqs).toBe(true);
    expect(typeof (await openDeadLetterSender(`${url}-dlq`, { region: 'us-east-1' })).sendToDeadLetterQueue).toBe(
      'function',
    );
  });

  it('refuses locations of the wrong kind and an SQS queue without its dead-letter queue', async () => {
    expect(locationKind('s3://b')).toBe('s3');
    expect(locationKind('https://sqs.x/q')).toBe('sqs');
    expect(locationKind('./d')).toBe('folder');
    await expect(openQueue('https://sqs.x/q')).rejects.toThrow(/needs its dead-letter queue URL/);
    await expect(openQueue('s3://b/p')).rejects.toThrow(/is an object store/);
    await expect(openObjectStore('https://sqs.x/q')).rejects.toThrow(/is a queue URL/);
    await expect(openObjectStore('ftp://host/x')).rejects.toThrow(/not a folder, file:\/\/, s3:\/\/ or SQS URL/);
  });
});
