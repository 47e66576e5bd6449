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
  // Empty: the schema says minItems 1; the use-case words it (EMPTY_BATCH), as for binary bodies.
  if (phi.length === 0) return [];
  const issue = phiIssue(phi, 'phi');
  if (issue !== undefined) throwIssue(op, issue);
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
    if (Array.isArray(phi)) {
      const issue = rowIssue(phi, 'phi');
      if (issue !== undefined) throwIssue('guide', issue);
    }
    if (Array.isArray(lossGradients)) {
      if (lossGradients.length > MAX_GUIDE_GRADIENTS) {
        throwIssue('guide', {
          code: ApiErrorCode.invalidBody,
          path: 'lossGradients',
          message: `at most ${MAX_GUIDE_GRADIENTS} loss gradients are accepted, got ${lossGradients.length}`,
        });
      }
      for (let r = 0; r < lossGradients.length; r++) {
        const row: unknown = lossGradients[r];
        const issue = Array.isArray(row) ? rowIssue(row, `lossGradients.${r}`) : notArray(row, `lossGradients.${r}`);
        if (issue !== undefined) throwIssue('guide', issue);
      }
    }
  }
  return validate('guide', guideRequestSchema, body);
}

/** The first problem of a phi input, or undefined when it has none. */
interface PhiIssue {
  code: typeof ApiErrorCode.invalidBody | typeof ServeErrorCode.notFinite;
  /** zod-style path, e.g. `phi.3.1`. */
  path: string;
  message: string;
}

/** phi as one row (its first element a number) or as rows (its first element an array). */
function phiIssue(phi: unknown[], path: string): PhiIssue | undefined {
  const first: unknown = phi[0];
  if (phi.length > 0 && typeof first !== 'number' && !Array.isArray(first)) {
    const message = `expected a number or an array of numbers, got ${kind(first)}`;
    return { code: ApiErrorCode.invalidBody, path: `${path}.0`, message };
  }
  return Array.isArray(first) ? rowsIssue(phi, path) : rowIssue(phi, path);
}

function rowsIssue(rows: unknown[], path: string): PhiIssue | undefined {
  for (let r = 0; r < rows.length; r++) {
    const row: unknown = rows[r];
    const issue = Array.isArray(row) ? rowIssue(row, `${path}.${r}`) : notArray(row, `${path}.${r}`);
    if (issue !== undefined) return issue;
  }
  return undefined;
}

/** The first element of `a` that is not a finite number; stops there. */
function rowIssue(a: unknown[], path: string): PhiIssue | undefined {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x !== 'number') {
      return { code: ApiErrorCode.invalidBody, path: `${path}.${i}`, message: `expected a number, got ${kind(x)}` };
    }
    if (!Number.isFinite(x)) {
      return {
        code: ServeErrorCode.notFinite,
        path: `${path}.${i}`,
        message: `is ${x} (a number beyond the float range, such as 1e309)`,
      };
    }
  }
  return undefined;
}

function notArray(x: unknown, path: string): PhiIssue {
  return { code: ApiErrorCode.invalidBody, path, message: `expected an array of numbers, got ${kind(x)}` };
}

function kind(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x === 'object' ? 'an object' : typeof x;
}

function throwIssue(op: string, issue: PhiIssue): never {
  if (issue.code === ServeErrorCode.notFinite) {
    const at = issue.path.split('.');
    const label = `${at[0]}${at
      .slice(1)
      .map((i) => `[${i}]`)
      .join('')}`;
    throw new ApiError(issue.code, `${op}: ${label} ${issue.message}`);
  }
  throw new ApiError(issue.code, `${op}: invalid body at '${issue.path}': ${issue.message}`, {
    issues: [{ path: issue.path, message: issue.message }],
  });
}
