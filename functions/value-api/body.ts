import type { MiddlewareHandler } from 'hono';
import { ApiError, ApiErrorCode } from './errors.js';
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

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a JSON body; invalid UTF-8 and invalid JSON are both 400 INVALID_JSON. With `shape`, a
 * body holding more than `shape.maxContainers` arrays and objects is 400 INVALID_BODY before
 * JSON.parse sees it: the routes' bodies are a few arrays of numbers (one per row), and
 * JSON.parse of millions of tiny containers (`{"phi":[{},{},...]}`) would take hundreds of
 * milliseconds and hundreds of megabytes for a body within the size limit.
 */
export function parseJson(bytes: Uint8Array, shape?: { op: string; maxContainers: number }): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ApiError(ApiErrorCode.invalidJson, 'request body is not valid UTF-8');
  }
  if (shape !== undefined && moreContainersThan(bytes, shape.maxContainers)) {
    throw new ApiError(
      ApiErrorCode.invalidBody,
      `${shape.op}: invalid body: more than ${shape.maxContainers} arrays and objects (one array per row is expected)`,
      { maxContainers: shape.maxContainers },
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(
      ApiErrorCode.invalidJson,
      `request body is not valid JSON: ${(e as Error).message.slice(0, 200)}`,
    );
  }
}

/**
 * True when the JSON text has more than `limit` arrays and objects (opening brackets outside
 * strings); one pass over the bytes that stops at the first one past the limit. A body with at
 * most `limit` brackets anywhere, strings included, is answered first by counting them with the
 * built-in indexOf, several times faster than looking at every byte in JS (a 128-number phi has
 * two brackets); only a body past that bound is scanned byte by byte.
 */
export function moreContainersThan(bytes: Uint8Array, limit: number): boolean {
  if (bracketsAtMost(bytes, limit)) return false;
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === 0x22 /* " */) {
      // Skip the string (escapes included); an unterminated one is left to JSON.parse.
      for (i++; i < bytes.length; i++) {
        const s = bytes[i];
        if (s === 0x5c /* \ */) i++;
        else if (s === 0x22) break;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++n > limit) return true;
    }
  }
  return false;
}

/** True when `[` and `{` occur at most `limit` times in all (inside strings too). */
function bracketsAtMost(bytes: Uint8Array, limit: number): boolean {
  let n = 0;
  for (let i = bytes.indexOf(0x5b /* [ */); i !== -1; i = bytes.indexOf(0x5b, i + 1)) if (++n > limit) return false;
  for (let i = bytes.indexOf(0x7b /* { */); i !== -1; i = bytes.indexOf(0x7b, i + 1)) if (++n > limit) return false;
  return true;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A body of little-endian float32 values, copied so that it is aligned. */
export function parseFloat32(bytes: Uint8Array, op: string): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new ApiError(
      'DIMENSION_MISMATCH',
      `${op}: body has ${bytes.byteLength} bytes, not a whole number of float32 values (4 bytes each)`,
    );
  }
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}
