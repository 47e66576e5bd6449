import type { MiddlewareHandler } from 'hono';
import { decodeJson } from '../../shared/use-cases/serving/request-bodies.js';
import { ApiError, ApiErrorCode, unwrap } from './errors.js';
import { routed } from './routes.js';

/**
 * The body-limit middleware of the /v1 routes: a routed POST's body is read here, at most `limit`
 * bytes (413 PAYLOAD_TOO_LARGE past it, declared or streamed), and handed to the route as
 * `c.var.body`. A client that goes away mid-body is 400 REQUEST_ABORTED (answered to nobody,
 * not logged as a fault).
 */
export function bodyLimit(limit: number): MiddlewareHandler<{ Variables: { body: Uint8Array } }> {
  return async (c, next) => {
    if (c.req.method === 'POST' && routed(c)) c.set('body', await readBody(c.req.raw, limit));
    await next();
  };
}

/**
 * A body over the limit but at most this large is read to its end (and dropped) before the 413
 * is sent: a client that writes its whole body before it reads the answer (Python's
 * http.client, most clients with `Connection: close`) would otherwise find the connection
 * closed under its upload and report a broken pipe or a reset instead of the 413. A larger body
 * is answered at once (bounded by the server's request timeout either way).
 */
export const DRAIN_BEFORE_413 = 64 * 1024 * 1024;

async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get('content-length'));
  const reader = request.body?.getReader();
  if (reader === undefined) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    if (declared > limit) {
      if (declared <= DRAIN_BEFORE_413) await drain(reader, 0);
      throw tooLarge(limit);
    }
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      size += read.value.byteLength;
      if (size > limit) {
        await drain(reader, size);
        throw tooLarge(limit);
      }
      chunks.push(read.value);
    }
  } catch (e) {
    // Reading fails only when the client goes away mid-body: an expected event, not a fault here.
    if (e instanceof ApiError) throw e;
    throw new ApiError(ApiErrorCode.requestAborted, 'the client closed the connection before the body arrived');
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}

/** Reads and drops the rest of a body (`seen` bytes read already) up to DRAIN_BEFORE_413. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, seen: number): Promise<void> {
  while (seen <= DRAIN_BEFORE_413) {
    const read = await reader.read();
    if (read.done) return;
    seen += read.value.byteLength;
  }
  await reader.cancel();
}

function tooLarge(limit: number): ApiError {
  return new ApiError(ApiErrorCode.payloadTooLarge, `request body is larger than ${limit} bytes`);
}

/**
 * A JSON body (shared/use-cases/serving/request-bodies.ts: UTF-8, the bound on arrays and objects
 * with `shape`, JSON.parse), or its INVALID_JSON / INVALID_BODY thrown for `app.onError`.
 */
export function parseJson(bytes: Uint8Array, shape?: { op: string; maxContainers: number }): unknown {
  return unwrap(decodeJson(bytes, shape));
}
