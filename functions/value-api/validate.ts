import type { z } from 'zod';
import {
  BINARY_CONTENT_TYPE,
  type GuideRequest,
  guideRequestSchema,
  MAX_GUIDE_GRADIENTS,
  predictRequestSchema,
} from '../../shared/schemas/api.js';
import { ServeErrorCode } from '../../shared/use-cases/serving/serve-guidance.js';
import { ApiError, ApiErrorCode } from './errors.js';

/**
 * The media type of a Content-Type value without its parameters, lower-cased (type and subtype
 * are case-insensitive, RFC 9110 8.3.1): `Application/JSON; charset=utf-8` is `application/json`.
 */
export function mediaType(type: string): string {
  const semicolon = type.indexOf(';');
  return (semicolon === -1 ? type : type.slice(0, semicolon)).trim().toLowerCase();
}

/** `application/json` and `application/<x>+json`, exactly (after mediaType). */
const JSON_MEDIA_TYPE = /^application\/([a-z0-9!#$&^_.-]+\+)?json$/;

/** True for a JSON content type. A request without one is not read as JSON (415). */
export function isJsonType(type: string | undefined): boolean {
  if (type === 'application/json') return true; // the common spelling, without the parsing
  return type !== undefined && JSON_MEDIA_TYPE.test(mediaType(type));
}

/** JSON; anything else, or no Content-Type at all, is 415. */
export function requireJson(type: string | undefined, op: string, binaryToo = false): void {
  if (isJsonType(type)) return;
  const accepted = binaryToo ? `application/json or ${BINARY_CONTENT_TYPE}` : 'application/json';
  throw new ApiError(
    ApiErrorCode.unsupportedMediaType,
    type === undefined
      ? `${op}: the request has no Content-Type; send ${accepted}`
      : `${op}: content type '${type.slice(0, 80)}' is not supported; send ${accepted}`,
  );
}

/** A parsed body checked against its zod schema; the first issues become a 400 INVALID_BODY. */
export function validate<S extends z.ZodType>(op: string, schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues
    .slice(0, 5)
    .map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  const first = issues[0];
  const where = first?.path ? ` at '${first.path}'` : '';
  throw new ApiError(ApiErrorCode.invalidBody, `${op}: invalid body${where}: ${first?.message ?? 'invalid'}`, {
    issues,
  });
}

/**
 * The `{ phi }` body of predict and gradient, validated in time and memory bounded by the body's
 * length: when `phi` is an array, a plain loop checks it and throws at the first bad element
 * (400 INVALID_BODY naming it, or NOT_FINITE for a number JSON.parse overflowed to Infinity,
 * such as `1e309`); only a body whose `phi` is not an array at all goes to the zod schema, which
 * then fails on the top-level shape without looking inside any array. zod alone would build one
 * issue object per bad element (for `{"phi":[{},{},...]}` of 6 MB, two million of them, seconds
 * of blocked event loop and gigabytes; bench/RESULTS.md, "Hostile request bodies").
 */
export function checkPhiBody(op: string, body: unknown): number[] | number[][] {
  const phi = typeof body === 'object' && body !== null ? (body as { phi?: unknown }).phi : undefined;
  if (!Array.isArray(phi)) return validate(op, predictRequestSchema, body).phi;
  // One row (its first element a number) or rows (its first element an array); empty: the
  // schema says minItems 1, and the use-case words it (EMPTY_BATCH), as for binary bodies.
  if (Array.isArray(phi[0])) phi.forEach((row, r) => checkRow(op, row, `phi.${r}`));
  else if (phi.length > 0 && typeof phi[0] !== 'number') {
    bad(op, 'phi.0', `expected a number or an array of numbers, got ${kind(phi[0])}`);
  } else checkRow(op, phi, 'phi');
  return phi as number[] | number[][];
}

/**
 * The guide body: the same bounded checks of `phi` (one row) and `lossGradients` (at most
 * MAX_GUIDE_GRADIENTS rows, checked before any row is looked at) as `checkPhiBody`; the zod
 * schema then checks the rest, with every array already known to hold finite numbers only.
 */
export function checkGuideBody(body: unknown): GuideRequest {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const { phi, lossGradients } = body as { phi?: unknown; lossGradients?: unknown };
    if (Array.isArray(phi)) checkRow('guide', phi, 'phi');
    if (Array.isArray(lossGradients)) {
      if (lossGradients.length > MAX_GUIDE_GRADIENTS) {
        const message = `at most ${MAX_GUIDE_GRADIENTS} loss gradients are accepted, got ${lossGradients.length}`;
        bad('guide', 'lossGradients', message);
      }
      lossGradients.forEach((row, r) => checkRow('guide', row, `lossGradients.${r}`));
    }
  }
  return validate('guide', guideRequestSchema, body);
}

/** Throws at the first element of `row` that is not a finite number (or when it is not an array). */
function checkRow(op: string, row: unknown, path: string): void {
  if (!Array.isArray(row)) bad(op, path, `expected an array of numbers, got ${kind(row)}`);
  for (let i = 0; i < row.length; i++) {
    const x: unknown = row[i];
    if (typeof x !== 'number') bad(op, `${path}.${i}`, `expected a number, got ${kind(x)}`);
    if (!Number.isFinite(x)) {
      // phi.3.1 -> phi[3][1]
      const label = `${path}.${i}`.replace(/\.(\d+)/g, '[$1]');
      throw new ApiError(
        ServeErrorCode.notFinite,
        `${op}: ${label} is ${x} (a number beyond the float range, such as 1e309)`,
      );
    }
  }
}

function bad(op: string, path: string, message: string): never {
  throw new ApiError(ApiErrorCode.invalidBody, `${op}: invalid body at '${path}': ${message}`, {
    issues: [{ path, message }],
  });
}

function kind(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x === 'object' ? 'an object' : typeof x;
}
