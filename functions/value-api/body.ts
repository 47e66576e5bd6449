import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { slabFloat32 } from '../../shared/util/slab.js';
import { ApiError, ApiErrorCode } from './errors.js';
import { header } from './header.js';

/**
 * Reads a request body with a size limit (413 past it). On Node the bytes are read straight
 * from the IncomingMessage that @hono/node-server passes as `c.env.incoming`, skipping the web
 * stream that `c.req.arrayBuffer()` would build (most of a small request's cost); elsewhere
 * (Lambda) the standard Request is used.
 */
export async function readBody(c: Context, limit: number): Promise<Uint8Array> {
  const declared = Number(header(c, 'content-length'));
  const incoming = (c.env as { incoming?: IncomingMessage & PreRead } | undefined)?.incoming;
  const stream = incoming !== undefined && typeof incoming.on === 'function' && incoming[preReadBody] === undefined;
  if (declared > limit) {
    if (stream && declared <= DRAIN_BEFORE_413) await discardRest(incoming, 0);
    throw tooLarge(limit);
  }
  const body =
    incoming?.[preReadBody] ??
    (stream ? await readIncoming(incoming, limit) : new Uint8Array(await c.req.arrayBuffer()));
  if (body.byteLength > limit) throw tooLarge(limit);
  return body;
}

/**
 * Where the Node fast lane (node-fast-lane.ts) leaves a body it has already read when it hands
 * the request on to the Hono app: the stream is spent, so readBody answers with these bytes.
 */
export const preReadBody = Symbol('metricopt.preReadBody');
export interface PreRead {
  [preReadBody]?: Uint8Array;
}

/**
 * A body over the limit but at most this large is read to its end (and dropped) before the 413
 * is sent: a client that writes its whole body before it reads the answer (Python's
 * http.client, most clients with `Connection: close`) would otherwise find the connection
 * closed under its upload and report a broken pipe or a reset instead of the 413. A larger body
 * is answered at once (bounded by the server's request timeout either way).
 */
export const DRAIN_BEFORE_413 = 64 * 1024 * 1024;

/** Reads and drops the rest of a body (`seen` bytes already read) until its end or DRAIN_BEFORE_413. */
function discardRest(incoming: IncomingMessage, seen: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let size = seen;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > DRAIN_BEFORE_413) done();
    };
    const onError = (e: Error & { code?: string }) => {
      cleanup();
      reject(aborted(e));
    };
    const cleanup = () => {
      incoming.off('data', onData);
      incoming.off('end', done);
      incoming.off('error', onError);
    };
    const done = () => {
      cleanup();
      // Past the cap, let the rest drain or the server close the connection.
      incoming.resume();
      resolve();
    };
    if (incoming.readableEnded) {
      resolve();
      return;
    }
    incoming.on('data', onData);
    incoming.on('end', done);
    incoming.on('error', onError);
  });
}

/** Node's IncomingMessage fails with 'aborted' (ECONNRESET) when the client goes away mid-body. */
function aborted(e: Error & { code?: string }): Error {
  return e.code === 'ECONNRESET' || e.message === 'aborted'
    ? new ApiError(ApiErrorCode.requestAborted, 'the client closed the connection before the body arrived')
    : e;
}

function tooLarge(limit: number): ApiError {
  return new ApiError(ApiErrorCode.payloadTooLarge, `request body is larger than ${limit} bytes`);
}

function readIncoming(incoming: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Read the rest before answering 413 (see DRAIN_BEFORE_413).
        discardRest(incoming, size).then(() => reject(tooLarge(limit)), reject);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (e: Error & { code?: string }) => {
      cleanup();
      // A client gone mid-body is an expected event, not a fault of this server.
      reject(aborted(e));
    };
    const cleanup = () => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
    };
    if (incoming.readableEnded) {
      resolve(new Uint8Array(0));
      return;
    }
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
  });
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
  const out = slabFloat32(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}

/** Float32 values as little-endian bytes. */
export function float32Bytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] as number, true);
  return out;
}
