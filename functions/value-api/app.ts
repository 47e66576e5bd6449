import { randomUUID } from 'node:crypto';
import { type Context, Hono } from 'hono';
import type { z } from 'zod';
import {
  BINARY_CONTENT_TYPE,
  guideRequestSchema,
  predictRequestSchema,
  VERSION_HEADER,
  versionQuerySchema,
} from '../../shared/schemas/api.js';
import type {
  BatchResult,
  GuidanceService,
  GradientResult,
  PhiInput,
  ServedValueFunction,
} from '../../shared/use-cases/serve-guidance.js';
import { DomainError, type Result } from '../../shared/util/result.js';
import { LIBRARY_VERSION } from '../../shared/version.js';
import type { Authenticate } from './auth.js';
import { float32Bytes, parseFloat32, parseJson, readBody } from './body.js';
import { ApiError, ApiErrorCode, errorResponse, statusOf } from './errors.js';
import { header } from './header.js';
import { buildOpenApiDocument } from './openapi.js';

export interface ValueApiOptions {
  service: GuidanceService;
  /** Who may call /v1; `noAuth` turns auth off. */
  authenticate: Authenticate;
  /** Largest accepted request body (413 above). */
  maxBodyBytes: number;
  /** Structured log sink for real faults (500s); one JSON object per call. */
  log?: (entry: Record<string, unknown>) => void;
}

/**
 * Fresh headers per response: @hono/node-server adds Content-Length to the object it is given,
 * so a shared constant would carry one response's length into the next.
 */
const jsonHeaders = (): Record<string, string> => ({ 'content-type': 'application/json' });

/**
 * The value-function API: one Hono app served on Node (node.ts) and on Lambda (lambda.ts).
 * Handlers stay thin: read and validate the body, call one GuidanceService use-case, write the
 * answer. The hot routes (predict, gradient) build their JSON by hand from typed arrays and
 * skip per-request allocation of validators or documents.
 */
export function createValueApi(options: ValueApiOptions): Hono {
  const { service, authenticate, maxBodyBytes } = options;
  const log = options.log ?? ((entry) => process.stderr.write(`${JSON.stringify(entry)}\n`));
  const app = new Hono();
  let openApi: string | undefined;
  const health = JSON.stringify({ status: 'ok', version: LIBRARY_VERSION });

  app.get('/healthz', () => new Response(health, { headers: jsonHeaders() }));
  app.get('/openapi.json', () => {
    openApi ??= JSON.stringify(buildOpenApiDocument());
    return new Response(openApi, { headers: jsonHeaders() });
  });

  // Checked at the top of each /v1 handler rather than in a middleware: one function call
  // instead of an extra async step per request on the hot routes.
  const authorize = (c: Context) => {
    if (!authenticate(c)) {
      throw new ApiError(ApiErrorCode.unauthorized, 'a valid API key is required (Authorization: Bearer <key>)');
    }
  };

  app.get('/v1/value-functions', async (c) => {
    authorize(c);
    return new Response(JSON.stringify({ valueFunctions: await service.list() }), { headers: jsonHeaders() });
  });

  app.get('/v1/value-functions/:id', async (c) => {
    authorize(c);
    const summary = unwrap(await service.describe(c.req.param('id')));
    return new Response(JSON.stringify(summary), { headers: jsonHeaders() });
  });

  app.post('/v1/value-functions/:id/predict', async (c) => {
    authorize(c);
    const { input, binary } = await readPhi(c, 'predict', maxBodyBytes);
    const result = unwrap(await service.predict(c.req.param('id'), versionOf(c), input));
    return binary ? binaryAnswer(result, Float32Array.from(result.natural)) : jsonAnswer(result);
  });

  app.post('/v1/value-functions/:id/gradient', async (c) => {
    authorize(c);
    const { input, binary } = await readPhi(c, 'gradient', maxBodyBytes);
    const result = unwrap(await service.gradient(c.req.param('id'), versionOf(c), input));
    if (!binary) return jsonAnswer(result, result.gradients);
    const out = new Float32Array(result.n + result.gradients.length);
    out.set(result.natural);
    out.set(result.gradients, result.n);
    return binaryAnswer(result, out);
  });

  app.post('/v1/value-functions/:id/guide', async (c) => {
    authorize(c);
    requireJson(c, 'guide');
    const body = parseJson(await readBody(c, maxBodyBytes));
    const request = validate('guide', guideRequestSchema, body);
    const r = unwrap(await service.guide(c.req.param('id'), versionOf(c), request));
    const text =
      `{${prefixOf(r.served)},"direction":[${r.direction.join(',')}],"value":${r.natural},` +
      `"normalised":${r.normalised},"P":${r.P},"sigma2":${r.sigma2},"seed":${r.seed}}`;
    return new Response(text, { headers: jsonHeaders() });
  });

  app.notFound((c) => errorResponse(404, ApiErrorCode.notFound, `no route ${c.req.method} ${c.req.path}`));

  app.onError((e, c) => {
    if (e instanceof DomainError) {
      const status = statusOf(e);
      if (status !== undefined) return errorResponse(status, e.code, e.message, e.details);
    }
    const given = header(c, 'x-request-id');
    const requestId = given !== undefined && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
    log({
      level: 'error',
      msg: 'value-api: unhandled error',
      requestId,
      method: c.req.method,
      path: c.req.path,
      code: e instanceof DomainError ? e.code : undefined,
      error: e instanceof Error ? e.message : String(e),
      stack: e instanceof Error ? e.stack : undefined,
    });
    return errorResponse(500, ApiErrorCode.internal, 'internal error; reported with this request id', { requestId });
  });

  return app;
}

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw result.error;
  return result.value;
}

function versionOf(c: Context): number | undefined {
  if (!c.req.url.includes('?')) return undefined;
  const raw = c.req.query('version');
  if (raw === undefined) return undefined;
  const parsed = versionQuerySchema.safeParse(raw);
  if (!parsed.success || raw.trim() === '') {
    throw new ApiError(ApiErrorCode.invalidQuery, `version must be a positive integer, got '${raw.slice(0, 40)}'`);
  }
  return parsed.data;
}

async function readPhi(c: Context, op: string, limit: number): Promise<{ input: PhiInput; binary: boolean }> {
  const type = header(c, 'content-type');
  if (type?.startsWith(BINARY_CONTENT_TYPE)) {
    return { input: { kind: 'float32', data: parseFloat32(await readBody(c, limit), op) }, binary: true };
  }
  requireJson(c, op, true);
  const body = parseJson(await readBody(c, limit));
  const phi = plainPhi(body) ?? validate(op, predictRequestSchema, body).phi;
  return { input: { kind: 'json', phi }, binary: false };
}

/**
 * The common, valid case of predictRequestSchema checked by hand: `phi` is an array of finite
 * numbers or an array of such arrays. It accepts exactly what the schema accepts on this shape
 * (z.number() also rejects non-finite values) and returns undefined otherwise, so that every
 * other body goes through zod and gets its error message from the schema. Saves the zod call
 * on the hot path.
 */
function plainPhi(body: unknown): number[] | number[][] | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const phi = (body as { phi?: unknown }).phi;
  if (!Array.isArray(phi)) return undefined;
  if (phi.length === 0 || typeof phi[0] === 'number') return finiteNumbers(phi) ? (phi as number[]) : undefined;
  for (const row of phi) if (!Array.isArray(row) || !finiteNumbers(row)) return undefined;
  return phi as number[][];
}

function finiteNumbers(a: unknown[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) return false;
  }
  return true;
}

/** JSON (or no content type, read as JSON); anything else is 415. */
function requireJson(c: Context, op: string, binaryToo = false): void {
  const type = header(c, 'content-type');
  if (type !== undefined && !/^application\/(.+\+)?json\b/i.test(type)) {
    const accepted = binaryToo ? `application/json or ${BINARY_CONTENT_TYPE}` : 'application/json';
    throw new ApiError(
      ApiErrorCode.unsupportedMediaType,
      `${op}: content type '${type.slice(0, 80)}' is not supported; send ${accepted}`,
    );
  }
}

function validate<S extends z.ZodType>(op: string, schema: S, body: unknown): z.output<S> {
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

/** `"id":...,"version":...,"metric":{...}` per served checkpoint, built once. */
const prefixes = new WeakMap<ServedValueFunction, string>();
function prefixOf(served: ServedValueFunction): string {
  let prefix = prefixes.get(served);
  if (prefix === undefined) {
    const metric = served.checkpoint.metric;
    prefix = `"id":${JSON.stringify(served.id)},"version":${served.version},"metric":${JSON.stringify({ name: metric.name, direction: metric.direction })}`;
    prefixes.set(served, prefix);
  }
  return prefix;
}

/** JSON by hand: every number is finite (checked by the use-case), so join() writes valid JSON. */
function jsonAnswer(result: BatchResult, gradients?: GradientResult['gradients']): Response {
  let text = `{${prefixOf(result.served)},"values":[${result.natural.join(',')}],"normalised":[${result.normalised.join(',')}]`;
  if (gradients) {
    const d = result.served.compiled.d;
    const rows: string[] = new Array(result.n);
    for (let r = 0; r < result.n; r++) rows[r] = `[${gradients.subarray(r * d, (r + 1) * d).join(',')}]`;
    text += `,"gradients":[${rows.join(',')}]`;
  }
  return new Response(`${text}}`, { headers: jsonHeaders() });
}

function binaryAnswer(result: BatchResult, values: Float32Array): Response {
  return new Response(float32Bytes(values), {
    headers: { 'content-type': BINARY_CONTENT_TYPE, [VERSION_HEADER]: String(result.served.version) },
  });
}
