import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { parseS3Url, S3ObjectStore } from '../../shared/adapters/object-store.s3.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';

/**
 * An in-memory stand-in for S3 that answers the commands the adapter sends the way S3 does
 * (412 on If-None-Match: * when the key exists, 404 NoSuchKey, paginated listings). The same
 * contract runs against LocalStack in the integration tests; here it checks the key mapping,
 * the prefix and the error handling without a network.
 */
function fakeS3(pageSize = 2): { client: S3Client; objects: Map<string, Uint8Array>; calls: string[] } {
  const objects = new Map<string, Uint8Array>();
  const calls: string[] = [];
  const fail = (status: number, name: string) =>
    Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  const client = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const input = command.input;
      const key = `${input.Bucket}/${input.Key}`;
      calls.push(`${command.constructor.name} ${input.Key ?? input.Prefix}`);
      switch (command.constructor.name) {
        case 'PutObjectCommand': {
          if (input.IfNoneMatch === '*' && objects.has(key)) throw fail(412, 'PreconditionFailed');
          const body = input.Body as string | Uint8Array;
          objects.set(key, typeof body === 'string' ? new TextEncoder().encode(body) : body);
          return {};
        }
        case 'GetObjectCommand': {
          const body = objects.get(key);
          if (!body) throw fail(404, 'NoSuchKey');
          return { Body: { transformToByteArray: async () => body } };
        }
        case 'DeleteObjectCommand':
          objects.delete(key);
          return {};
        case 'ListObjectsV2Command': {
          const all = [...objects.keys()]
            .filter((k) => k.startsWith(`${input.Bucket}/${input.Prefix}`))
            .map((k) => k.slice(String(input.Bucket).length + 1))
            .sort();
          const from = Number(input.ContinuationToken ?? 0);
          const page = all.slice(from, from + pageSize);
          const more = from + pageSize < all.length;
          return {
            Contents: page.map((Key) => ({ Key })),
            IsTruncated: more,
            ...(more ? { NextContinuationToken: String(from + pageSize) } : {}),
          };
        }
        default:
          throw new Error(`fake S3: unexpected ${command.constructor.name}`);
      }
    },
  } as unknown as S3Client;
  return { client, objects, calls };
}

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const adapters: Array<[string, () => Promise<ObjectStore>]> = [
  [
    'FsObjectStore',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'metricopt-store-'));
      dirs.push(dir);
      return new FsObjectStore(dir);
    },
  ],
  ['S3ObjectStore', async () => new S3ObjectStore({ bucket: 'b', prefix: 'runs/one/', client: fakeS3().client })],
];

describe.each(adapters)('ObjectStore contract: %s', (_name, make) => {
  it('puts, gets, lists under a prefix (sorted) and deletes', async () => {
    const store = await make();
    await store.put('value-functions/b/v000002.json', '{"b":2}');
    await store.put('value-functions/a/v000001.json', new TextEncoder().encode('{"a":1}'));
    await store.put('other/x.json', 'x');
    expect(new TextDecoder().decode(await store.get('value-functions/a/v000001.json'))).toBe('{"a":1}');
    expect(await store.get('value-functions/missing.json')).toBeUndefined();
    expect(await store.list('value-functions/')).toEqual([
      'value-functions/a/v000001.json',
      'value-functions/b/v000002.json',
    ]);
    await store.delete('value-functions/a/v000001.json');
    expect(await store.list('value-functions/')).toEqual(['value-functions/b/v000002.json']);
  });

  it('creates exclusively with putIfAbsent, never overwriting', async () => {
    const store = await make();
    expect(await store.putIfAbsent('k/one.json', 'first')).toBe(true);
    expect(await store.putIfAbsent('k/one.json', 'second')).toBe(false);
    expect(new TextDecoder().decode(await store.get('k/one.json'))).toBe('first');
  });
});

describe('S3ObjectStore', () => {
  it('keeps keys under the prefix and pages through listings', async () => {
    const fake = fakeS3(2);
    const store = new S3ObjectStore({ bucket: 'b', prefix: 'runs/one', client: fake.client });
    for (const k of ['a', 'b', 'c', 'd', 'e']) await store.put(`value-functions/${k}.json`, k);
    expect([...fake.objects.keys()].every((k) => k.startsWith('b/runs/one/value-functions/'))).toBe(true);
    expect(await store.list('value-functions/')).toHaveLength(5);
    expect(fake.calls.filter((c) => c.startsWith('ListObjectsV2Command'))).toHaveLength(3);
    expect(store.location).toBe('s3://b/runs/one/');
  });

  it('rethrows errors other than 412/404', async () => {
    const client = {
      send: async () => {
        throw Object.assign(new Error('AccessDenied'), { $metadata: { httpStatusCode: 403 } });
      },
    } as unknown as S3Client;
    const store = new S3ObjectStore({ bucket: 'b', client });
    await expect(store.putIfAbsent('k', 'x')).rejects.toThrow('AccessDenied');
    await expect(store.get('k')).rejects.toThrow('AccessDenied');
  });

  it('parses s3:// URLs', () => {
    expect(parseS3Url('s3://bucket/some/prefix/')).toEqual({ bucket: 'bucket', prefix: 'some/prefix' });
    expect(parseS3Url('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(() => parseS3Url('s3:///x')).toThrow(/not s3:\/\/bucket/);
  });
});
