import { createRoute, type RouteConfig } from '@hono/zod-openapi';
import type { Context, Handler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { z } from 'zod';
import {
  errorResponseSchema,
  gradientResponseSchema,
  guideRequestSchema,
  guideResponseSchema,
  healthResponseSchema,
  predictRequestSchema,
  predictResponseSchema,
  VERSION_HEADER,
  valueFunctionListResponseSchema,
  versionQuerySchema as versionQuery,
  valueFunctionSummarySchema,
} from '../../shared/schemas/api.js';
import {
  createFitJobRequestSchema,
  fitJobSummarySchema,
  inputUploadResponseSchema,
  observationUploadResponseSchema,
} from '../../shared/schemas/fit-api.js';
import { jobIdSchema, jobStatusResponseSchema } from '../../shared/schemas/job.js';
import { fitLabelsSchema } from '../../shared/schemas/observations.js';
import type { Principal } from '../../shared/util/api-key-hash.js';

/** What the /v1 middleware leaves for the handlers (app.ts): the caller and the request body. */
export type ValueApiEnv = { Variables: { principal: Principal; body: Uint8Array } };

/** Registers a declared route's handler (the route table stays the one source of paths and methods). */
export type AddRoute = (route: RouteConfig, handler: Handler<ValueApiEnv>) => void;

/** How the /v1 routes are guarded; the document declares exactly that (nothing when off). */
export type AuthMode = 'api-key' | 'iam' | 'none';

/**
 * Every route of the value API, declared once: the app registers its handler on each
 * (`app.openapi`), the OpenAPI document's paths are generated from them, and the 405 answers
 * take their Allow lists from them. Bodies are referenced by schema (components generated in
 * openapi.ts) and read by the handlers, which bound their size and shape before zod sees them
 * (body.ts, validate.ts); path and query parameters are validated here, by zod, and a failure
 * goes through the app's defaultHook.
 */
export function declareRoutes(auth: AuthMode = 'api-key'): ValueApiRoutes {
  const security = auth === 'none' ? {} : { security: [{ [auth === 'iam' ? 'sigv4' : 'bearer']: [] }] };
  /** A route; the error statuses it answers, with 401 and 403 when auth is on, and 500. */
  const route = (
    method: 'get' | 'post',
    path: string,
    summary: string,
    statuses: number[],
    ok: RouteConfig['responses'],
    request?: RouteConfig['request'],
  ) => {
    const all = auth === 'none' ? [...statuses, 500] : [...[...statuses, 401, 403].sort(), 500];
    const error = (s: number) => [s, { description: errorText[s] as string, content: json(errorResponseSchema) }];
    const responses = { ...ok, ...Object.fromEntries(all.map(error)) };
    return createRoute({ method, path, summary, ...security, ...(request ? { request } : {}), responses });
  };
  const ok = (schema: z.ZodType, description = 'OK') => ({ description, content: json(schema) });
  const body = (content: Content) => ({ body: { required: true, content } });
  /** start and cancel: `{}`, or no body at all (the Content-Type is required either way). */
  const noSettings = { body: { required: false, content: emptyJson } };
  const fit = { params: fitJobParams };
  const stored = { 200: ok(inputUploadResponseSchema, 'Stored before'), 201: ok(inputUploadResponseSchema, 'Stored') };
  const phiRoute = (op: 'predict' | 'gradient', summary: string, response: z.ZodType) =>
    route(
      'post',
      `/v1/value-functions/{id}/${op}`,
      summary,
      [400, 404, 413, 415],
      { 200: { ...ok(response), headers: versionHeader, content: { ...json(response), ...float32Answer } } },
      { params: idParams, query: versionQuery, ...body({ ...json(predictRequestSchema), ...float32Rows }) },
    );
  return {
    health: createRoute({
      method: 'get',
      path: '/healthz',
      summary: 'Liveness',
      responses: { 200: ok(healthResponseSchema) },
    }),
    openApi: createRoute({
      method: 'get',
      path: '/openapi.json',
      hide: true,
      responses: { 200: { description: 'This document' } },
    }),
    list: route('get', '/v1/value-functions', 'List value functions', [], { 200: ok(valueFunctionListResponseSchema) }),
    describe: route(
      'get',
      '/v1/value-functions/{id}',
      'Describe one value function',
      [404],
      { 200: ok(valueFunctionSummarySchema) },
      { params: idParams },
    ),
    predict: phiRoute('predict', 'Metric estimates at one phi or a batch', predictResponseSchema),
    gradient: phiRoute('gradient', 'Estimates and d(normalised)/d(phi)', gradientResponseSchema),
    guide: route(
      'post',
      '/v1/value-functions/{id}/guide',
      'Guided-ES descent direction (MetricOpt Eq. 3-4)',
      [400, 404, 413, 415],
      { 200: ok(guideResponseSchema) },
      { params: idParams, query: versionQuery, ...body(json(guideRequestSchema)) },
    ),
    job: route(
      'get',
      '/v1/jobs/{id}',
      "A training job's status (stalled: its runner stopped renewing its lease)",
      [400, 404],
      { 200: ok(jobStatusResponseSchema) },
      fit,
    ),
    createFitJob: route(
      'post',
      '/v1/fit-jobs',
      'Create a fit job (bring your own model)',
      [400, 409, 413, 415],
      { 200: ok(fitJobSummarySchema, 'The same job existed already'), 201: ok(fitJobSummarySchema, 'Created') },
      body(json(createFitJobRequestSchema)),
    ),
    fitJob: route(
      'get',
      '/v1/fit-jobs/{id}',
      'A fit job: state, uploads and status document',
      [404],
      { 200: ok(fitJobSummarySchema) },
      fit,
    ),
    observations: route(
      'post',
      '/v1/fit-jobs/{id}/observations',
      'Upload a batch of observations (idempotent per trajectory and step)',
      [400, 404, 409, 413, 415],
      { 200: ok(observationUploadResponseSchema) },
      { ...fit, ...body(observationBodies) },
    ),
    labels: route(
      'post',
      '/v1/fit-jobs/{id}/labels',
      'Upload the labels that predictions are scored on (once; the same labels again: 200)',
      [400, 404, 409, 413, 415],
      stored,
      { ...fit, ...body(json(fitLabelsSchema)) },
    ),
    predictions: route(
      'post',
      '/v1/fit-jobs/{id}/predictions/{key}',
      'Upload float32 predictions that observation lines name ({"predictions": {"evaluator", "key"}})',
      [400, 404, 409, 413, 415],
      stored,
      { params: predictionParams, ...body(predictionBody) },
    ),
    start: route(
      'post',
      '/v1/fit-jobs/{id}/start',
      'Start the fit (queued, or run by this server); a stalled job (its runner died) is re-queued',
      [400, 404, 409, 415, 503],
      {
        200: ok(fitJobSummarySchema, 'Started before (or cancelled)'),
        202: ok(fitJobSummarySchema, 'Started, or a stalled job re-queued'),
      },
      { ...fit, ...noSettings },
    ),
    cancel: route(
      'post',
      '/v1/fit-jobs/{id}/cancel',
      'Cancel the fit: it stops, or never runs; a done or failed job is unchanged',
      [400, 404, 415],
      { 200: ok(fitJobSummarySchema, 'The job after the cancel') },
      { ...fit, ...noSettings },
    ),
  };
}

export type ValueApiRoutes = Record<
  | 'health'
  | 'openApi'
  | 'list'
  | 'describe'
  | 'predict'
  | 'gradient'
  | 'guide'
  | 'job'
  | 'createFitJob'
  | 'fitJob'
  | 'observations'
  | 'labels'
  | 'predictions'
  | 'start'
  | 'cancel',
  RouteConfig
>;

/** True when a route (not only middleware) matches the request's path and method. */
export function routed(c: Context): boolean {
  return matchedRoutes(c).some((r) => r.method !== 'ALL');
}

/**
 * The methods a path has among the routes (GET also answers HEAD), for the 405 answer to
 * another method; undefined when no route has the path (404).
 */
export function allowedMethods(routes: readonly RouteConfig[], path: string): string[] | undefined {
  const methods = routes
    .filter((r) => new RegExp(`^${r.path.replace(/\./g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path))
    .flatMap((r) => (r.method === 'get' ? ['GET', 'HEAD'] : [r.method.toUpperCase()]));
  return methods.length === 0 ? undefined : methods;
}

type Content = Record<string, { schema: Record<string, unknown>; description?: string }>;

/** `application/json` content of a component schema (its id from the zod schema's meta). */
function json(schema: z.ZodType): Content {
  const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
  if (!id) throw new Error('declareRoutes: schema has no id');
  return { 'application/json': { schema: { $ref: `#/components/schemas/${id}` } } };
}

const float32Rows: Content = {
  'application/octet-stream': {
    schema: { type: 'string', format: 'binary' },
    description: 'n x d little-endian float32 values, row-major.',
  },
};
const float32Answer: Content = {
  'application/octet-stream': {
    schema: { type: 'string', format: 'binary' },
    description: 'predict: n float32 values; gradient: n values then n x d gradient entries (little-endian).',
  },
};
const versionHeader = {
  [VERSION_HEADER]: { description: 'Checkpoint version that answered.', schema: { type: 'integer' as const } },
};
const observationBodies: Content = {
  'application/x-ndjson': {
    schema: { type: 'string' },
    description: 'JSON lines {trajectory, step, phi, metric?} (docs/bring-your-own-model.md).',
  },
  'application/octet-stream': {
    schema: { type: 'string', format: 'binary' },
    description: 'uint32 LE length L, L bytes of JSON lines without phi, then n x d float32 LE phi values, row-major.',
  },
};
const predictionBody: Content = {
  'application/octet-stream': {
    schema: { type: 'string', format: 'binary' },
    description: 'n (two classes) or n x classes float32 LE values, finite, on the uploaded labels.',
  },
};
const emptyJson: Content = {
  'application/json': {
    schema: { type: 'object', maxProperties: 0 },
    description: 'An empty object, {} (or no body; Content-Type application/json either way).',
  },
};

const idParams = z.object({ id: z.string() });
/** A job id that cannot exist: 404 JOB_NOT_FOUND on the fit-job routes, 400 INVALID_QUERY on /v1/jobs (app.ts, defaultHook). */
const fitJobParams = z.object({ id: jobIdSchema });
const predictionParams = z.object({ id: jobIdSchema, key: z.string() });

const errorText: Record<number, string> = {
  400: 'Malformed body, wrong dimension, non-finite number, empty batch or malformed query',
  401: 'Missing or invalid API key',
  403: "The key lacks the route's scope (read: value functions; write: jobs)",
  404: 'Unknown value function or version',
  413: 'Body or batch too large',
  415: 'Missing or unsupported content type',
  409: 'A fit job conflict: another spec under the id, an upload that changes stored observations, a started job, or a value function id owned by someone else or of another kind',
  503: 'Fit jobs cannot start here (no jobs queue configured)',
  500: 'A checkpoint that cannot be served (CHECKPOINT_INVALID) or an internal fault (INTERNAL)',
};
