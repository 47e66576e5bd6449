import type { Context } from 'hono';
import { API_SCOPES, type ApiScope } from '../../shared/schemas/value-api-config.js';
import { apiKeyPrincipals, type Principal } from '../../shared/util/api-key-hash.js';

/** The caller of a request, or undefined when it may not use the /v1 routes at all. */
export type Authenticate = (c: Context) => Principal | undefined;

const BOTH: ReadonlySet<ApiScope> = new Set(API_SCOPES);

/**
 * `Authorization: Bearer <key>` checked against operator-configured SHA-256 hashes (each with
 * its scopes, `<hash>[:read|:write]`); the keys themselves are never stored. API keys are long
 * random strings, so a plain (unsalted) hash is the standard choice (as for GitHub tokens),
 * and the map lookup on the hash leaks nothing useful about the key through timing.
 */
export function apiKeyAuth(entries: readonly string[]): Authenticate {
  const principalOf = apiKeyPrincipals(entries);
  return (c) => principalOf(c.req.header('authorization'));
}

/**
 * IAM auth through a Lambda function URL (AuthType AWS_IAM): AWS verifies the SigV4 signature
 * before invoking the function, and puts the caller in the request context. Checking that the
 * context is there guards against the URL being reconfigured to AuthType NONE by mistake. The
 * caller's ARN is its principal. A function URL grants invoke for the whole URL, so an IAM caller
 * holds both scopes; the routes map to the same two scopes (app.ts), and a deployment that needs
 * read-only IAM callers puts API Gateway per-route IAM authorization in front.
 */
export const iamAuth: Authenticate = (c) => {
  const env = c.env as
    | { event?: { requestContext?: { authorizer?: { iam?: { userArn?: unknown; callerId?: unknown } } } } }
    | undefined;
  const iam = env?.event?.requestContext?.authorizer?.iam;
  if (iam === undefined) return undefined;
  const who = typeof iam.userArn === 'string' ? iam.userArn : typeof iam.callerId === 'string' ? iam.callerId : '?';
  return { id: `iam:${who}`, scopes: BOTH };
};

const ANONYMOUS: Principal = { id: 'anonymous', scopes: BOTH };
export const noAuth: Authenticate = () => ANONYMOUS;

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
