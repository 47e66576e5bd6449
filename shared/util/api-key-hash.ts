import { createHash } from 'node:crypto';

/** The stored form of an API key: lower-case hex SHA-256 of the key. `metricopt serve --hash-key KEY` prints it. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
