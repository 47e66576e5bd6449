import type { z } from 'zod';
import { BINARY_CONTENT_TYPE } from '../../shared/schemas/api.js';
import { ApiError, ApiErrorCode } from './errors.js';

/** `application/json` and `application/<x>+json`, with or without parameters. */
const JSON_CONTENT_TYPE = /^application\/(.+\+)?json\b/i;

/** True for a JSON content type or none (read as JSON). */
export function isJsonType(type: string | undefined): boolean {
  return type === undefined || JSON_CONTENT_TYPE.test(type);
}

/** JSON (or no content type, read as JSON); anything else is 415. */
export function requireJson(type: string | undefined, op: string, binaryToo = false): void {
  if (isJsonType(type)) return;
  const accepted = binaryToo ? `application/json or ${BINARY_CONTENT_TYPE}` : 'application/json';
  throw new ApiError(
    ApiErrorCode.unsupportedMediaType,
    `${op}: content type '${(type as string).slice(0, 80)}' is not supported; send ${accepted}`,
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
 * The common, valid case of predictRequestSchema (`{ phi }`) checked by hand: `phi` is an array
 * of finite numbers or an array of such arrays. Whatever it accepts, the schema accepts with the
 * same `phi` (test/value-api/fast-paths.test.ts proves it on valid and malformed bodies); on
 * anything else it returns undefined and the caller runs the schema, which words the error. zod
 * stays the one definition of the body (and of the OpenAPI document); this only saves its cost
 * on the hot path.
 */
export function plainPhi(body: unknown): number[] | number[][] | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const phi = (body as { phi?: unknown }).phi;
  if (!Array.isArray(phi)) return undefined;
  if (phi.length === 0 || typeof phi[0] === 'number') return finiteNumbers(phi) ? (phi as number[]) : undefined;
  for (let r = 0; r < phi.length; r++) {
    const row: unknown = phi[r];
    if (!Array.isArray(row) || !finiteNumbers(row)) return undefined;
  }
  return phi as number[][];
}

function finiteNumbers(a: unknown[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) return false;
  }
  return true;
}
