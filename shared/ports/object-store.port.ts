/**
 * Object storage (S3 in the cloud, a folder on one machine). Keys are '/'-separated paths
 * without a leading slash.
 */
export interface ObjectStore {
  /** A human-readable location, e.g. `file:///tmp/out/store` or `s3://bucket/prefix`. */
  readonly location: string;
  put(key: string, body: Uint8Array | string): Promise<void>;
  /**
   * Writes only if the key does not exist yet (S3 `If-None-Match: *`, an exclusive create on disk).
   * Returns false, writing nothing, when the key was already there.
   */
  putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean>;
  /** The bytes, or undefined when the key does not exist. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

export async function getText(store: ObjectStore, key: string): Promise<string | undefined> {
  const bytes = await store.get(key);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}
