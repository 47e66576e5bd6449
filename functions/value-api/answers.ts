/**
 * A JSON answer: text already written, or a value to stringify. Fresh headers per response:
 * @hono/node-server adds Content-Length to the object it is given.
 */
export function jsonResponse(body: string | object, status = 200): Response {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Response(text, { status, headers: { 'content-type': 'application/json' } });
}
