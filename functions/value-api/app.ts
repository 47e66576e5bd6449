import { randomUUID } from 'node:crypto';
import { type Context, Hono } from 'hono';
import { versionQuerySchema } from '../../shared/schemas/api.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { GuidanceService } from '../../shared/use-cases/serving/serve-guidance.js';
import { DomainError, type Result } from '../../shared/util/result.js';
import { LIBRARY_VERSION } from '../../shared/version.js';
import type { Authenticate, Principal } from './auth.js';
import type { ApiScope } from '../../shared/schemas/value-api-config.js';
import { parseJson, readBody } from './body.js';
import { ApiError, ApiErrorCode, errorResponse, statusOf } from './errors.js';
import { FIT_ROUTES, type FitRoutesOptions, mountFitRoutes } from './fit-routes.js';
import { header } from './header.js';
import { addJobRoutes } from './job-routes.js';
import { type AuthMode, buildOpenApiDocument } from './openapi.js';
import {
  guideAnswer,
  isBinaryType,
  type PhiOp,
  phiAnswerHeaders,
  readPhiInput,
  SPARE_CONTAINERS,
  writePhiAnswer,
} from './phi-routes.js';
import { checkGuideBody, requireJson } from './validate.js';

export interface ValueApiOptions {
  service: GuidanceService;
  /** Who may call /v1; `noAuth` turns auth off. */
  authenticate: Authenticate;
  /** Largest accepted request body (413 above). */
  maxBodyBytes: number;
  /** Structured log sink for real faults (500s); one JSON object per call. */
  log?: (entry: Record<string, unknown>) => void;
  /** What the OpenAPI document declares as the /v1 routes' security (default api-key). */
  authMode?: AuthMode;
  /**
   * Which Host headers the /v1 routes accept (403 HOST_NOT_ALLOWED otherwise); all when omitted.
   * The Node server sets it when auth is off (see localHostCheck).
   */
  hostAllowed?: (host: string | undefined) => boolean;
  /** The fit-job routes (bring your own model, fit-routes.ts); absent, they are not mounted. */
  fit?: FitRoutesOptions;
  /** The object store of training jobs (GET /v1/jobs/{id}); the route is absent without one. */
  jobStore?: ObjectStore;
}

/** The routes and their methods, for 405 answers (with Allow) to the other methods. */
const ROUTES: readonly [RegExp, string][] = [
  [/^\/healthz$/, 'GET'],
  [/^\/openapi\.json$/, 'GET'],
  [/^\/v1\/value-functions$/, 'GET'],
  [/^\/v1\/value-functions\/[^/]+$/, 'GET'],
  [/^\/v1\/value-functions\/[^/]+\/(predict|gradient|guide)$/, 'POST'],
  ...FIT_ROUTES,
  [/^\/v1\/jobs\/[^/]+$/, 'GET'],
];

/**
 * Fresh headers per response: @hono/node-server adds Content-Length to the object it is given,
 * so a shared constant would carry one response's length into the next.
 */
const jsonHeaders = (): Record<string, string> => ({ 'content-type': 'application/json' });

/**
 * The value-function API: one Hono app served on Node (node.ts) and on Lambda (lambda.ts).
 * Handlers stay thin: read and validate the body, call one GuidanceService use-case, write the
 * answer. The hot routes (predict, gradient) build their JSON by hand from typed arrays and
 * skip per-request allocation of validators or documents; on Node most of their requests are
 * answered by the fast lane (node-fast-lane.ts), which hands every other one, and every
 * failure, to this app.
 */
export function createValueApi(options: ValueApiOptions): Hono {
  const { service, authenticate, maxBodyBytes, hostAllowed } = options;
  const log = options.log ?? ((entry) => process.stderr.write(`${JSON.stringify(entry)}\n`));
  const app = new Hono();
  let openApi: string | undefined;
  const health = JSON.stringify({ status: 'ok', version: LIBRARY_VERSION });

  app.get('/healthz', () => {
    const invalidCheckpoints = service.catalog.invalidCheckpoints();
    const body =
      invalidCheckpoints.length === 0
        ? health
        : JSON.stringify({ status: 'ok', version: LIBRARY_VERSION, details: { invalidCheckpoints } });
    return new Response(body, { headers: jsonHeaders() });
  });
  app.get('/openapi.json', () => {
    openApi ??= JSON.stringify(buildOpenApiDocument(options.authMode));
    return new Response(openApi, { headers: jsonHeaders() });
  });

  // Checked at the top of each /v1 handler rather than in a middleware: one function call
  // instead of an extra async step per request on the hot routes.
  // Each route needs one scope (auth.ts): `read` for the value functions, `write` for jobs.
  const authorize = (c: Context, scope: ApiScope): Principal => {
    if (hostAllowed !== undefined && !hostAllowed(header(c, 'host'))) {
      throw new ApiError(
        ApiErrorCode.hostNotAllowed,
        'with auth off only localhost and IP-address Host headers are accepted (configure an API key to serve a name)',
      );
    }
    const principal = authenticate(c);
    if (principal === undefined) {
      throw new ApiError(ApiErrorCode.unauthorized, 'a valid API key is required (Authorization: Bearer <key>)');
    }
    if (!principal.scopes.has(scope)) {
      throw new ApiError(ApiErrorCode.insufficientScope, `this key lacks the '${scope}' scope this route needs`);
    }
    return principal;
  };

  app.get('/v1/value-functions', async (c) => {
    authorize(c, 'read');
    return new Response(JSON.stringify({ valueFunctions: await service.list() }), { headers: jsonHeaders() });
  });

  app.get('/v1/value-functions/:id', async (c) => {
    authorize(c, 'read');
    const summary = unwrap(await service.describe(c.req.param('id')));
    return new Response(JSON.stringify(summary), { headers: jsonHeaders() });
  });

  // The hot routes; their parsing and answers live in phi-routes.ts, shared with the Node fast
  // lane (node-fast-lane.ts), which serves the plain valid requests and hands the rest here.
  const phiRoute = (op: PhiOp) => async (c: Context) => {
    authorize(c, 'read');
    const type = header(c, 'content-type');
    const binary = isBinaryType(type);
    if (!binary) requireJson(type, op, true);
    const input = readPhiInput(op, binary, await readBody(c, maxBodyBytes), service.limits.maxRows);
    const id = c.req.param('id') as string;
    const result = unwrap(
      op === 'predict'
        ? await service.predict(id, versionOf(c), input)
        : await service.gradient(id, versionOf(c), input),
    );
    const answer = writePhiAnswer(result, binary);
    return new Response(answer.body, { headers: phiAnswerHeaders(answer) });
  };
  app.post('/v1/value-functions/:id/predict', phiRoute('predict'));
  app.post('/v1/value-functions/:id/gradient', phiRoute('gradient'));

  app.post('/v1/value-functions/:id/guide', async (c) => {
    authorize(c, 'read');
    requireJson(header(c, 'content-type'), 'guide');
    const bytes = await readBody(c, maxBodyBytes);
    const request = checkGuideBody(parseJson(bytes, { op: 'guide', maxContainers: SPARE_CONTAINERS }));
    const r = unwrap(await service.guide(c.req.param('id'), versionOf(c), request));
    return new Response(guideAnswer(r), { headers: jsonHeaders() });
  });

  if (options.fit) mountFitRoutes(app, { ...options.fit, authorize, maxBodyBytes });
  if (options.jobStore) addJobRoutes(app, { store: options.jobStore, authorize });

  app.notFound((c) => {
    const path = c.req.path;
    const route = ROUTES.find(([pattern]) => pattern.test(path));
    if (route !== undefined) {
      const allow = route[1] === 'GET' ? ['GET', 'HEAD'] : [route[1]];
      return errorResponse(
        405,
        ApiErrorCode.methodNotAllowed,
        `${c.req.method} is not allowed on ${path.slice(0, 200)}; use ${route[1]}`,
        { allow },
      );
    }
    return errorResponse(404, ApiErrorCode.notFound, `no route ${c.req.method} ${path.slice(0, 200)}`);
  });

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
  if (!parsed.success) {
    throw new ApiError(
      ApiErrorCode.invalidQuery,
      `version must be a positive integer in plain decimal digits, got '${raw.slice(0, 40)}'`,
    );
  }
  return parsed.data;
}
