import type { Context } from 'hono';
import { hashApiKey } from '../../shared/schemas/value-api-config.js';
import { header } from './header.js';

export { API_KEY_HASH_PATTERN, hashApiKey } from '../../shared/schemas/value-api-config.js';

/** Decides whether a request may use the /v1 routes. */
export type Authenticate = (c: Context) => boolean;

/** Decides from the Authorization header alone whether a request may use the /v1 routes. */
export type AuthorizationCheck = (authorization: string | undefined) => boolean;

/**
 * `Authorization: Bearer <key>` checked against operator-configured SHA-256 hashes; the keys
 * themselves are never stored. API keys are long random strings, so a plain (unsalted) hash is
 * the standard choice (as for GitHub tokens), and the set lookup on the hash leaks nothing
 * useful about the key through timing.
 */
export function apiKeyAuth(hashes: readonly string[]): Authenticate {
  const check = apiKeyCheck(hashes);
  return (c) => check(header(c, 'authorization'));
}

/**
 * The header test of `apiKeyAuth`, for callers that have no Hono context (the Node fast lane).
 * Each distinct accepted header is hashed once: recently accepted headers are remembered, so a
 * busy client does not pay a SHA-256 per request. Bounded, and only successes are kept, so an
 * attacker cannot grow it.
 */
export function apiKeyCheck(hashes: readonly string[]): AuthorizationCheck {
  const allowed = new Set(hashes.map((h) => h.toLowerCase()));
  const accepted = new Set<string>();
  return (value) => {
    if (value === undefined || value.length > 1024) return false;
    if (accepted.has(value)) return true;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
    if (m === null || !allowed.has(hashApiKey(m[1] as string))) return false;
    if (accepted.size >= 256) accepted.clear();
    accepted.add(value);
    return true;
  };
}

/**
 * IAM auth through a Lambda function URL (AuthType AWS_IAM): AWS verifies the SigV4 signature
 * before invoking the function, and puts the caller in the request context. Checking that the
 * context is there guards against the URL being reconfigured to AuthType NONE by mistake.
 */
export const iamAuth: Authenticate = (c) => {
  const env = c.env as { event?: { requestContext?: { authorizer?: { iam?: unknown } } } } | undefined;
  return env?.event?.requestContext?.authorizer?.iam !== undefined;
};

export const noAuth: Authenticate = () => true;

/**
 * The Host check of a server with auth off, against DNS rebinding (a web page on a name that
 * resolves to 127.0.0.1 would otherwise reach the API from the browser): accepts `localhost`
 * and `*.localhost`, IP literals (`127.0.0.1`, `[::1]`) and the names given (the host the server
 * listens on), with any port; a request without Host is refused.
 */
export function localHostCheck(names: readonly string[] = []): (host: string | undefined) => boolean {
  const allowed = new Set(names.map((n) => n.toLowerCase()));
  return (host) => {
    if (host === undefined || host.length > 255) return false;
    const h = host.toLowerCase();
    if (h.startsWith('[')) return /^\[[0-9a-f:.]+\](:\d{1,5})?$/.test(h);
    const name = h.replace(/:\d{1,5}$/, '');
    return (
      name === 'localhost' || name.endsWith('.localhost') || /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || allowed.has(name)
    );
  };
}
