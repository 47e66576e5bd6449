import type { z } from 'zod';
import { BINARY_CONTENT_TYPE } from '../../shared/schemas/api.js';
import { validateBody } from '../../shared/use-cases/serving/request-bodies.js';
import { ApiError, ApiErrorCode, unwrap } from './errors.js';

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

/** A parsed body checked against its zod schema (validateBody), or its INVALID_BODY thrown. */
export function validate<S extends z.ZodType>(op: string, schema: S, body: unknown): z.output<S> {
  return unwrap(validateBody(op, schema, body));
}
