import type { FitErrorCode, ServingErrorCode } from '../../shared/error-codes.js';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ServeErrorCode } from '../../shared/use-cases/serving/serve-guidance.js';
import { DomainError, type Result } from '../../shared/util/result.js';
import { fitStatusByCode } from './fit-errors.js';

/** Error codes raised by the HTTP edge itself (the use-case codes are in ServeErrorCode). */
export const ApiErrorCode = {
  invalidJson: 'INVALID_JSON',
  invalidBody: 'INVALID_BODY',
  invalidQuery: 'INVALID_QUERY',
  unsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
  payloadTooLarge: 'PAYLOAD_TOO_LARGE',
  unauthorized: 'UNAUTHORIZED',
  /** A valid key without the scope the route needs (read: value functions; write: jobs). */
  insufficientScope: 'INSUFFICIENT_SCOPE',
  notFound: 'NOT_FOUND',
  methodNotAllowed: 'METHOD_NOT_ALLOWED',
  hostNotAllowed: 'HOST_NOT_ALLOWED',
  /** The client went away before its body arrived; answered (to nobody) and not logged. */
  requestAborted: 'REQUEST_ABORTED',
  internal: 'INTERNAL',
} as const;

type ApiCode = Exclude<(typeof ApiErrorCode)[keyof typeof ApiErrorCode], 'INTERNAL'>;

/**
 * The only place that chooses HTTP statuses. Every code of the API and of the use-cases it
 * calls must be listed (the compiler asks); null: not an expected failure here (500 INTERNAL).
 */
const statusByCode: Record<string, ContentfulStatusCode | null> = {
  [ApiErrorCode.invalidJson]: 400,
  [ApiErrorCode.invalidBody]: 400,
  [ApiErrorCode.invalidQuery]: 400,
  [ApiErrorCode.unsupportedMediaType]: 415,
  [ApiErrorCode.payloadTooLarge]: 413,
  [ApiErrorCode.unauthorized]: 401,
  [ApiErrorCode.insufficientScope]: 403,
  [ApiErrorCode.notFound]: 404,
  [ApiErrorCode.methodNotAllowed]: 405,
  [ApiErrorCode.hostNotAllowed]: 403,
  [ApiErrorCode.requestAborted]: 400,
  [ServeErrorCode.dimensionMismatch]: 400,
  [ServeErrorCode.emptyBatch]: 400,
  [ServeErrorCode.notFinite]: 400,
  [ServeErrorCode.tooManyRows]: 413,
  [ServeErrorCode.valueFunctionNotFound]: 404,
  [ServeErrorCode.versionNotFound]: 404,
  // A pinned version that cannot be served; it was logged once when first found (serve-guidance.ts).
  [ServeErrorCode.checkpointInvalid]: 500,
  ...fitStatusByCode,
} satisfies Record<ApiCode | ServingErrorCode | FitErrorCode, ContentfulStatusCode | null>;

/** An expected failure at the edge (bad request, auth, size); becomes a 4xx JSON error. */
export class ApiError extends DomainError {
  constructor(code: string, message: string, details?: unknown) {
    super(code, message, details);
    this.name = 'ApiError';
  }
}

/** Status for an expected failure; undefined means it is not one (a 500). */
export function statusOf(error: DomainError): ContentfulStatusCode | undefined {
  return statusByCode[error.code] ?? undefined;
}

export function errorBody(code: string, message: string, details?: unknown): string {
  return JSON.stringify({ error: details === undefined ? { code, message } : { code, message, details } });
}

export function errorResponse(status: number, code: string, message: string, details?: unknown): Response {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  const allow = (details as { allow?: unknown } | undefined)?.allow;
  if (status === 405 && Array.isArray(allow)) headers.allow = allow.join(', ');
  return new Response(errorBody(code, message, details), { status, headers });
}

/** A use-case's value, or its error thrown for `app.onError` to answer. */
export function unwrap<T>(result: Result<T, Error>): T {
  if (!result.ok) throw result.error;
  return result.value;
}
