import type { S3Client } from '@aws-sdk/client-s3';
import type { ObjectStore } from '../ports/object-store.port.js';

/**
 * The S3 client library, loaded when a store first talks to S3: it is most of the start-up time
 * of a process that imports this module (the value API Lambda serving a store folder, the CLI),
 * and a process that never uses an s3:// store never pays for it (bench/RESULTS.md, "Cold start").
 */
type S3Sdk = typeof import('@aws-sdk/client-s3');
let sdk: Promise<S3Sdk> | undefined;
const loadSdk = (): Promise<S3Sdk> => (sdk ??= import('@aws-sdk/client-s3'));

export interface S3ObjectStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' or ending without '/'; one '/' is added). */
  prefix?: string;
  /** A client to share (created once per process); otherwise one is built from the options below. */
  client?: S3Client;
  region?: string;
  /** Endpoint override, e.g. http://localhost:4566 for LocalStack. */
  endpoint?: string;
  /** Path-style addressing (bucket in the path), needed by LocalStack and MinIO. */
  forcePathStyle?: boolean;
}

/** `s3://bucket/some/prefix` -> { bucket, prefix: 'some/prefix' }. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m?.[1]) throw new Error(`parseS3Url: '${url}' is not s3://bucket[/prefix]`);
  return { bucket: m[1], prefix: (m[2] ?? '').replace(/\/+$/, '') };
}

function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** The object-store port on S3: keys live under `prefix/`; exclusive creates use `If-None-Match: *`. */
export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  private client: S3Client | undefined;
  private readonly clientOptions: Pick<S3ObjectStoreOptions, 'region' | 'endpoint' | 'forcePathStyle'>;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(options: S3ObjectStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ? `${options.prefix.replace(/\/+$/, '')}/` : '';
    this.location = `s3://${this.bucket}/${this.prefix}`;
    this.client = options.client;
    this.clientOptions = options;
  }

  /** The SDK and this store's client (built on first use, once). */
  private async s3(): Promise<{ sdk: S3Sdk; client: S3Client }> {
    const loaded = await loadSdk();
    this.client ??= new loaded.S3Client({
      ...(this.clientOptions.region ? { region: this.clientOptions.region } : {}),
      ...(this.clientOptions.endpoint ? { endpoint: this.clientOptions.endpoint } : {}),
      ...(this.clientOptions.forcePathStyle ? { forcePathStyle: true } : {}),
    });
    return { sdk: loaded, client: this.client };
  }

  private key(key: string): string {
    if (key === '' || key.startsWith('/')) throw new Error(`S3ObjectStore: invalid key '${key}'`);
    return this.prefix + key;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const { sdk, client } = await this.s3();
    await client.send(new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: body }));
  }

  async putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean> {
    const { sdk, client } = await this.s3();
    try {
      await client.send(
        new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: body, IfNoneMatch: '*' }),
      );
      return true;
    } catch (e) {
      // 412: the key exists. 409: a concurrent conditional write to the same key won the race.
      const status = statusOf(e);
      if (status === 412 || status === 409) return false;
      throw e;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const { sdk, client } = await this.s3();
    try {
      const out = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array(0);
    } catch (e) {
      if (statusOf(e) === 404 || (e instanceof sdk.S3ServiceException && e.name === 'NoSuchKey')) return undefined;
      throw e;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const { sdk, client } = await this.s3();
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new sdk.ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key) out.push(object.Key.slice(this.prefix.length));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    const { sdk, client } = await this.s3();
    await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
  }
}
