import { randomUUID } from 'node:crypto';
import { type Hook, OpenAPIHono, type RouteConfig } from '@hono/zod-openapi';
import type { Handler } from 'hono';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { BINARY_CONTENT_TYPE, VERSION_HEADER } from '../../shared/schemas/api.js';
import type { ApiScope } from '../../shared/schemas/value-api-config.js';
import type { GuidanceService } from '../../shared/use-cases/serving/serve-guidance.js';
import { JobError } from '../../shared/storage/job-errors.js';
import { DomainError } from '../../shared/util/result.js';
import { LIBRARY_VERSION } from '../../shared/version.js';
import { guideAnswer, phiAnswer, phiAnswerBytes } from '../../shared/use-cases/serving/answers.js';
import { checkGuideBody, checkPhiBody, decodeFloat32 } from '../../shared/use-cases/serving/request-bodies.js';
import { jsonResponse } from './answers.js';
import type { Authenticate } from './auth.js';
import { bodyLimit, parseJson } from './body.js';
import { ApiError, ApiErrorCode, errorResponse, statusOf, unwrap } from './errors.js';
import { type FitRoutesOptions, mountFitRoutes } from './fit-routes.js';
import { addJobRoutes } from './job-routes.js';
import { buildOpenApiDocument } from './openapi.js';
import { type AddRoute, type AuthMode, allowedMethods, declareRoutes, routed, type ValueApiEnv } from './routes.js';
import { mediaType, requireJson } from './validate.js';
import { issueLine } from '../../shared/schemas/zod-issue.js';

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

/**
 * Extra arrays and objects a JSON body may hold beyond one per row (the body, phi, and a few in
 * keys the schema ignores); `guide` needs 3 + 16 (MAX_GUIDE_GRADIENTS) at most.
 */
const SPARE_CONTAINERS = 64;

/**
 * The value-function API: one Hono app served on Node (node.ts) and on Lambda (lambda.ts).
 * Routes are declared once (routes.ts); the Host check, auth and body limit are middleware of
 * /v1; the handlers stay thin: check the content type, parse the body, call one GuidanceService
 * use-case, write the answer. Every failure becomes a coded JSON error in `onError`.
 */
export function createValueApi(options: ValueApiOptions): OpenAPIHono<ValueApiEnv> {
  const { service, authenticate, maxBodyBytes, hostAllowed } = options;
  const log = options.log ?? ((entry) => process.stderr.write(`${JSON.stringify(entry)}\n`));
  const routes = declareRoutes(options.authMode);
  const app = new OpenAPIHono<ValueApiEnv>({ defaultHook });
  const declared: RouteConfig[] = [];
  const add: AddRoute = (route, handler) => {
    declared.push(route);
    app.openapi(route, handler as never);
  };

  // Host check, auth and body limit for every /v1 route. A route needs one scope (auth.ts):
  // `read` for the value functions, `write` for jobs.
  app.use('/v1/*', async (c, next) => {
    // No route for this path and method: notFound answers 404 or 405, to any caller.
    if (!routed(c)) return next();
    if (hostAllowed !== undefined && !hostAllowed(c.req.header('host'))) {
      throw new ApiError(
        ApiErrorCode.hostNotAllowed,
        'with auth off only localhost and IP-address Host headers are accepted (configure an API key to serve a name)',
      );
    }
    const principal = authenticate(c);
    if (principal === undefined) {
      throw new ApiError(ApiErrorCode.unauthorized, 'a valid API key is required (Authorization: Bearer <key>)');
    }
    const scope: ApiScope = c.req.path.startsWith('/v1/value-functions') ? 'read' : 'write';
    if (!principal.scopes.has(scope)) {
      throw new ApiError(ApiErrorCode.insufficientScope, `this key lacks the '${scope}' scope this route needs`);
    }
    c.set('principal', principal);
    await next();
  });
  app.use('/v1/*', bodyLimit(maxBodyBytes));

  const health = JSON.stringify({ status: 'ok', version: LIBRARY_VERSION });
  add(routes.health, () => {
    const invalidCheckpoints = service.catalog.invalidCheckpoints();
    if (invalidCheckpoints.length === 0) return jsonResponse(health);
    return jsonResponse({ status: 'ok', version: LIBRARY_VERSION, details: { invalidCheckpoints } });
  });
  let openApi: string | undefined;
  add(routes.openApi, () => jsonResponse((openApi ??= JSON.stringify(buildOpenApiDocument(app, options.authMode)))));

  add(routes.list, async () => jsonResponse({ valueFunctions: await service.list() }));
  add(routes.describe, async (c) => jsonResponse(unwrap(await service.describe(c.req.param('id') as string))));

  const phiRoute =
    (op: 'predict' | 'gradient'): Handler<ValueApiEnv> =>
    async (c) => {
      const type = c.req.header('content-type');
      const binary = type !== undefined && mediaType(type) === BINARY_CONTENT_TYPE;
      if (!binary) requireJson(type, op, true);
      const body = c.var.body;
      const input = binary
        ? { kind: 'float32' as const, data: unwrap(decodeFloat32(body, op)) }
        : {
            kind: 'json' as const,
            phi: unwrap(
              checkPhiBody(op, parseJson(body, { op, maxContainers: service.limits.maxRows + SPARE_CONTAINERS })),
            ),
          };
      const id = c.req.param('id') as string;
      const version = versionOf(c.req.query('version'));
      const result = unwrap(
        op === 'predict' ? await service.predict(id, version, input) : await service.gradient(id, version, input),
      );
      if (!binary) return jsonResponse(phiAnswer(result));
      return new Response(phiAnswerBytes(result), {
        headers: { 'content-type': BINARY_CONTENT_TYPE, [VERSION_HEADER]: String(result.served.version) },
      });
    };
  add(routes.predict, phiRoute('predict'));
  add(routes.gradient, phiRoute('gradient'));

  add(routes.guide, async (c) => {
    requireJson(c.req.header('content-type'), 'guide');
    const request = unwrap(checkGuideBody(parseJson(c.var.body, { op: 'guide', maxContainers: SPARE_CONTAINERS })));
    const id = c.req.param('id') as string;
    return jsonResponse(guideAnswer(unwrap(await service.guide(id, versionOf(c.req.query('version')), request))));
  });

  if (options.fit) mountFitRoutes(add, routes, options.fit);
  if (options.jobStore) addJobRoutes(add, routes, options.jobStore);

  app.notFound((c) => {
    const path = c.req.path;
    const allow = allowedMethods(declared, path);
    if (allow !== undefined) {
      const use = allow.filter((m) => m !== 'HEAD').join(' or ');
      const message = `${c.req.method} is not allowed on ${path.slice(0, 200)}; use ${use}`;
      return errorResponse(405, ApiErrorCode.methodNotAllowed, message, { allow });
    }
    return errorResponse(404, ApiErrorCode.notFound, `no route ${c.req.method} ${path.slice(0, 200)}`);
  });

  app.onError((e, c) => {
    if (e instanceof DomainError) {
      const status = statusOf(e);
      if (status !== undefined) return errorResponse(status, e.code, e.message, e.details);
    }
    const given = c.req.header('x-request-id');
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

/**
 * Path and query parameters that fail their route's zod schema: a fit job id that cannot exist
 * is 404 JOB_NOT_FOUND (as for a job that does not); a bad training-job id or `?version=` is
 * 400 INVALID_QUERY with the schema's message.
 */
const defaultHook: Hook<unknown, ValueApiEnv, string, unknown> = (result, c) => {
  if (result.success) return;
  const id = (c.req.param('id') ?? '').slice(0, 80);
  if (result.target === 'param' && c.req.path.startsWith('/v1/fit-jobs/')) {
    throw new JobError('JOB_NOT_FOUND', `no fit job '${id}'`);
  }
  if (result.target === 'param')
    throw new ApiError(ApiErrorCode.invalidQuery, `'${id}' is not a job id (letters, digits, . _ -)`);
  throw new ApiError(ApiErrorCode.invalidQuery, issueLine(result.error));
};

/** `?version=`, checked by the route's schema already. */
function versionOf(raw: string | undefined): number | undefined {
  return raw === undefined ? undefined : Number(raw);
}
