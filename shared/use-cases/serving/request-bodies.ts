import type { z } from 'zod';
import { type GuideRequest, guideRequestSchema, MAX_GUIDE_GRADIENTS, predictRequestSchema } from '../../schemas/api.js';
import { DomainError, err, ok, type Result } from '../../util/result.js';
import { ServeErrorCode } from './serve-errors.js';

/**
 * The request bodies of the serving routes, decoded from their bytes with work bounded by their
 * length (they guard against hostile bodies: bench/RESULTS.md, "Hostile request bodies"). Each
 * failure is a coded value: INVALID_JSON, INVALID_BODY (with `details.issues`), NOT_FINITE,
 * DIMENSION_MISMATCH.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a JSON body; invalid UTF-8 and invalid JSON are both INVALID_JSON. With `shape`, a
 * body holding more than `shape.maxContainers` arrays and objects is INVALID_BODY before
 * JSON.parse sees it: the routes' bodies are a few arrays of numbers (one per row), and
 * JSON.parse of millions of tiny containers (`{"phi":[{},{},...]}`) would take hundreds of
 * milliseconds and hundreds of megabytes for a body within the size limit.
 */
export function decodeJson(bytes: Uint8Array, shape?: { op: string; maxContainers: number }): Result<unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return err(new DomainError(ServeErrorCode.invalidJson, 'request body is not valid UTF-8'));
  }
  if (shape !== undefined && moreContainersThan(bytes, shape.maxContainers)) {
    return err(
      new DomainError(
        ServeErrorCode.invalidBody,
        `${shape.op}: invalid body: more than ${shape.maxContainers} arrays and objects (one array per row is expected)`,
        { maxContainers: shape.maxContainers },
      ),
    );
  }
  try {
    return ok(JSON.parse(text));
  } catch (e) {
    const message = `request body is not valid JSON: ${(e as Error).message.slice(0, 200)}`;
    return err(new DomainError(ServeErrorCode.invalidJson, message));
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
export function decodeFloat32(bytes: Uint8Array, op: string): Result<Float32Array> {
  if (bytes.byteLength % 4 !== 0) {
    return err(
      new DomainError(
        ServeErrorCode.dimensionMismatch,
        `${op}: body has ${bytes.byteLength} bytes, not a whole number of float32 values (4 bytes each)`,
      ),
    );
  }
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return ok(out);
}

/** A parsed body checked against its zod schema; the first issues become INVALID_BODY. */
export function validateBody<S extends z.ZodType>(op: string, schema: S, body: unknown): Result<z.output<S>> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return ok(parsed.data);
  const issues = parsed.error.issues
    .slice(0, 5)
    .map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  const first = issues[0];
  const where = first?.path ? ` at '${first.path}'` : '';
  const message = `${op}: invalid body${where}: ${first?.message ?? 'invalid'}`;
  return err(new DomainError(ServeErrorCode.invalidBody, message, { issues }));
}

/**
 * The `{ phi }` body of predict and gradient, validated in time and memory bounded by the body's
 * length: when `phi` is an array, a plain loop checks it and stops at the first bad element
 * (INVALID_BODY naming it, or NOT_FINITE for a number JSON.parse overflowed to Infinity, such as
 * `1e309`); only a body whose `phi` is not an array at all goes to the zod schema, which then
 * fails on the top-level shape without looking inside any array. zod alone would build one
 * issue object per bad element (for `{"phi":[{},{},...]}` of 6 MB, two million of them, seconds
 * of blocked event loop and gigabytes; bench/RESULTS.md, "Hostile request bodies").
 */
export function checkPhiBody(op: string, body: unknown): Result<number[] | number[][]> {
  const phi = typeof body === 'object' && body !== null ? (body as { phi?: unknown }).phi : undefined;
  if (!Array.isArray(phi)) {
    const checked = validateBody(op, predictRequestSchema, body);
    return checked.ok ? ok(checked.value.phi) : checked;
  }
  // One row (its first element a number) or rows (its first element an array); empty: the
  // schema says minItems 1, and the use-case words it (EMPTY_BATCH), as for binary bodies.
  const bad = Array.isArray(phi[0])
    ? checkRows(op, phi, 'phi')
    : phi.length > 0 && typeof phi[0] !== 'number'
      ? invalid(op, 'phi.0', `expected a number or an array of numbers, got ${kind(phi[0])}`)
      : checkRow(op, phi, 'phi');
  return bad === undefined ? ok(phi as number[] | number[][]) : err(bad);
}

/**
 * The guide body: the same bounded checks of `phi` (one row) and `lossGradients` (at most
 * MAX_GUIDE_GRADIENTS rows, checked before any row is looked at) as `checkPhiBody`; the zod
 * schema then checks the rest, with every array already known to hold finite numbers only.
 */
export function checkGuideBody(body: unknown): Result<GuideRequest> {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const { phi, lossGradients } = body as { phi?: unknown; lossGradients?: unknown };
    const bad =
      (Array.isArray(phi) ? checkRow('guide', phi, 'phi') : undefined) ??
      (Array.isArray(lossGradients)
        ? lossGradients.length > MAX_GUIDE_GRADIENTS
          ? invalid(
              'guide',
              'lossGradients',
              `at most ${MAX_GUIDE_GRADIENTS} loss gradients are accepted, got ${lossGradients.length}`,
            )
          : checkRows('guide', lossGradients, 'lossGradients')
        : undefined);
    if (bad !== undefined) return err(bad);
  }
  return validateBody('guide', guideRequestSchema, body);
}

/** The first bad element of the rows `rows` (each checked by checkRow, in order), as an error. */
function checkRows(op: string, rows: unknown[], path: string): DomainError | undefined {
  for (let r = 0; r < rows.length; r++) {
    const bad = checkRow(op, rows[r], `${path}.${r}`);
    if (bad !== undefined) return bad;
  }
  return undefined;
}

/** The first element of `row` that is not a finite number (or `row` not being an array), as an error. */
function checkRow(op: string, row: unknown, path: string): DomainError | undefined {
  if (!Array.isArray(row)) return invalid(op, path, `expected an array of numbers, got ${kind(row)}`);
  for (let i = 0; i < row.length; i++) {
    const x: unknown = row[i];
    if (typeof x !== 'number') return invalid(op, `${path}.${i}`, `expected a number, got ${kind(x)}`);
    if (!Number.isFinite(x)) {
      // phi.3.1 -> phi[3][1]
      const label = `${path}.${i}`.replace(/\.(\d+)/g, '[$1]');
      return new DomainError(
        ServeErrorCode.notFinite,
        `${op}: ${label} is ${x} (a number beyond the float range, such as 1e309)`,
      );
    }
  }
  return undefined;
}

function invalid(op: string, path: string, message: string): DomainError {
  return new DomainError(ServeErrorCode.invalidBody, `${op}: invalid body at '${path}': ${message}`, {
    issues: [{ path, message }],
  });
}

function kind(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x === 'object' ? 'an object' : typeof x;
}
