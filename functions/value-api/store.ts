import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { parseS3Url, S3ObjectStore } from '../../shared/adapters/object-store.s3.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { CHECKPOINT_PREFIX } from '../../shared/use-cases/value-function-store.js';

export interface StoreOptions {
  /** S3 endpoint override (LocalStack, MinIO). */
  s3Endpoint?: string | undefined;
  s3ForcePathStyle?: boolean | undefined;
}

/**
 * The object store a `--store`/METRICOPT_STORE names: `s3://bucket/prefix` or a folder. A folder
 * may be the output of `metricopt demo --out DIR` (whose store is DIR/store) or a store itself.
 */
export function openObjectStore(spec: string, options: StoreOptions = {}): ObjectStore {
  if (spec.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Url(spec);
    return new S3ObjectStore({
      bucket,
      prefix,
      ...(options.s3Endpoint ? { endpoint: options.s3Endpoint } : {}),
      ...(options.s3ForcePathStyle ? { forcePathStyle: true } : {}),
    });
  }
  const nested = join(spec, 'store');
  if (existsSync(join(nested, CHECKPOINT_PREFIX))) return new FsObjectStore(nested);
  return new FsObjectStore(spec);
}
