import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';

/**
 * A request header, lower-case name. On Node it is read from the IncomingMessage that
 * @hono/node-server passes as `c.env.incoming`: `c.req.header()` would build a web Headers
 * object from the raw headers on every request, a measurable share of a small request's cost.
 */
export function header(c: Context, name: string): string | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming?.headers !== undefined) {
    const value = incoming.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  return c.req.header(name);
}
