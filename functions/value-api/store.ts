import { type ObjectStoreOptions, openStoreLocation } from '../../shared/adapters/from-url.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';

/**
 * The object store a `--store`/METRICOPT_STORE names (shared/adapters/from-url.ts,
 * `openStoreLocation`: a folder, a `metricopt demo --out DIR` folder whose store is DIR/store, or S3).
 */
export function openValueStore(spec: string, options: ObjectStoreOptions = {}): Promise<ObjectStore> {
  return openStoreLocation(spec, options);
}
