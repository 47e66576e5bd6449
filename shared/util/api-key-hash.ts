import { createHash } from 'node:crypto';
import { type ApiScope, parseApiKeyEntry } from '../schemas/value-api-config.js';

/** The stored form of an API key: lower-case hex SHA-256 of the key. `metricopt serve --hash-key KEY` prints it. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Who is calling: a stable id (recorded as the owner of what it creates) and what it may do.
 * API keys: `key:` and the first 16 hex digits of the key's hash; IAM: the caller's ARN;
 * auth off: `anonymous`, with both scopes.
 */
export interface Principal {
  id: string;
  scopes: ReadonlySet<ApiScope>;
}

/**
 * The principal of an Authorization header. Each distinct accepted header is hashed once:
 * recently accepted headers are remembered, so a busy client does not pay a SHA-256 per
 * request. Bounded, and only successes are kept, so an attacker cannot grow it.
 */
export function apiKeyPrincipals(entries: readonly string[]): (value: string | undefined) => Principal | undefined {
  const byHash = new Map<string, Principal>();
  for (const entry of entries) {
    const { hash, scopes } = parseApiKeyEntry(entry);
    byHash.set(hash, { id: `key:${hash.slice(0, 16)}`, scopes });
  }
  const accepted = new Map<string, Principal>();
  return (value) => {
    if (value === undefined || value.length > 1024) return undefined;
    const known = accepted.get(value);
    if (known !== undefined) return known;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
    const principal = m === null ? undefined : byHash.get(hashApiKey(m[1] as string));
    if (principal === undefined) return undefined;
    if (accepted.size >= 256) accepted.clear();
    accepted.set(value, principal);
    return principal;
  };
}
