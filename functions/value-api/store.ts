import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { locationKind, type ObjectStoreOptions, openObjectStore } from '../../shared/adapters/from-url.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { CHECKPOINT_PREFIX } from '../../shared/use-cases/value-function-store.js';

/**
 * The object store a `--store`/METRICOPT_STORE names (shared/adapters/from-url.ts). A folder may
 * also be the output of `metricopt demo --out DIR`, whose store is DIR/store.
 */
export function openValueStore(spec: string, options: ObjectStoreOptions = {}): Promise<ObjectStore> {
  if (locationKind(spec) === 'folder' && !spec.startsWith('file://')) {
    const nested = join(spec, 'store');
    if (existsSync(join(nested, CHECKPOINT_PREFIX))) return openObjectStore(nested, options);
  }
  return openObjectStore(spec, options);
}
