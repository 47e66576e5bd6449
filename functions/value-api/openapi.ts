import { z } from 'zod';
import {
  errorResponseSchema,
  gradientRequestSchema,
  gradientResponseSchema,
  guideRequestSchema,
  guideResponseSchema,
  healthResponseSchema,
  predictRequestSchema,
  predictResponseSchema,
  VERSION_HEADER,
  valueFunctionListResponseSchema,
  valueFunctionSummarySchema,
} from '../../shared/schemas/api.js';
import {
  createFitJobRequestSchema,
  fitJobSummarySchema,
  inputUploadResponseSchema,
  observationUploadResponseSchema,
} from '../../shared/schemas/fit-api.js';
import { jobStatusSchema } from '../../shared/schemas/job.js';
import { fitLabelsSchema } from '../../shared/schemas/observations.js';
import { LIBRARY_VERSION } from '../../shared/version.js';

/** How the /v1 routes are guarded; the document declares exactly that (nothing when off). */
export type AuthMode = 'api-key' | 'iam' | 'none';

/** The OpenAPI 3 document, generated from the zod schemas in shared/schemas/api.ts. */
export function buildOpenApiDocument(auth: AuthMode = 'api-key'): Record<string, unknown> {
  const components = [
    predictRequestSchema,
    predictResponseSchema,
    gradientResponseSchema,
    guideRequestSchema,
    guideResponseSchema,
    valueFunctionSummarySchema,
    valueFunctionListResponseSchema,
    healthResponseSchema,
    errorResponseSchema,
    createFitJobRequestSchema,
    fitJobSummarySchema,
    observationUploadResponseSchema,
    inputUploadResponseSchema,
    fitLabelsSchema,
    jobStatusSchema,
  ];
  const registry = z.registry<{ id: string }>();
  for (const schema of components) registry.add(schema, { id: idOf(schema) });
  const generated = z.toJSONSchema(registry, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }).schemas as Record<string, Record<string, unknown>>;
  const schemas = Object.fromEntries(Object.entries(generated).map(([id, { $id: _, ...schema }]) => [id, schema]));
  const ref = (schema: z.ZodType) => ({ $ref: `#/components/schemas/${idOf(schema)}` });
  const json = (schema: z.ZodType) => ({ 'application/json': { schema: ref(schema) } });
  const errors = (...statuses: number[]) =>
    Object.fromEntries(
      statuses.map((s) => [String(s), { description: errorText[s], content: json(errorResponseSchema) }]),
    );
  const scheme = auth === 'iam' ? 'sigv4' : 'bearer';
  // Auth off: no security requirement and no 401; otherwise each /v1 route needs the scheme.
  const guarded = (...statuses: number[]) =>
    auth === 'none'
      ? { responses: errors(...statuses, 500) }
      : { security: [{ [scheme]: [] }], responses: errors(...[...statuses, 401, 403].sort(), 500) };
  const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  const versionParam = {
    name: 'version',
    in: 'query',
    required: false,
    description: 'Pin a checkpoint version (plain decimal digits); the newest servable one when omitted.',
    schema: { type: 'integer', minimum: 1 },
  };
  const binary = {
    'application/octet-stream': {
      schema: { type: 'string', format: 'binary' },
      description: 'n x d little-endian float32 values, row-major.',
    },
  };
  const binaryAnswer = {
    'application/octet-stream': {
      schema: { type: 'string', format: 'binary' },
      description: 'predict: n float32 values; gradient: n values then n x d gradient entries (little-endian).',
    },
  };
  const versionHeader = {
    [VERSION_HEADER]: { description: 'Checkpoint version that answered.', schema: { type: 'integer' } },
  };
  const batchRoute = (summary: string, request: z.ZodType, response: z.ZodType) => {
    const { responses, ...security } = guarded(400, 404, 413, 415);
    return {
      post: {
        summary,
        ...security,
        parameters: [idParam, versionParam],
        requestBody: { required: true, content: { ...json(request), ...binary } },
        responses: {
          200: {
            description: 'OK',
            headers: versionHeader,
            content: { ...json(response), ...binaryAnswer },
          },
          ...responses,
        },
      },
    };
  };
  const get = (summary: string, response: z.ZodType, statuses: number[], parameters: unknown[] = []) => {
    const { responses, ...security } = guarded(...statuses);
    return {
      get: {
        summary,
        ...security,
        ...(parameters.length > 0 ? { parameters } : {}),
        responses: { 200: { description: 'OK', content: json(response) }, ...responses },
      },
    };
  };
  const guide = guarded(400, 404, 413, 415);
  const paths = {
    '/healthz': {
      get: { summary: 'Liveness', responses: { 200: { description: 'OK', content: json(healthResponseSchema) } } },
    },
    '/v1/value-functions': get('List value functions', valueFunctionListResponseSchema, []),
    '/v1/value-functions/{id}': get('Describe one value function', valueFunctionSummarySchema, [404], [idParam]),
    '/v1/value-functions/{id}/predict': batchRoute(
      'Metric estimates at one phi or a batch',
      predictRequestSchema,
      predictResponseSchema,
    ),
    '/v1/value-functions/{id}/gradient': batchRoute(
      'Estimates and d(normalised)/d(phi)',
      gradientRequestSchema,
      gradientResponseSchema,
    ),
    '/v1/jobs/{id}': get("A training job's status", jobStatusSchema, [400, 404], [idParam]),
    '/v1/value-functions/{id}/guide': {
      post: {
        summary: 'Guided-ES descent direction (MetricOpt Eq. 3-4)',
        ...(guide.security === undefined ? {} : { security: guide.security }),
        parameters: [idParam, versionParam],
        requestBody: { required: true, content: json(guideRequestSchema) },
        responses: { 200: { description: 'OK', content: json(guideResponseSchema) }, ...guide.responses },
      },
    },
  };
  // Bring your own model (fit-routes.ts).
  const jobIdParam = {
    name: 'id',
    in: 'path',
    required: true,
    schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' },
  };
  const emptyJson = { 'application/json': { schema: { type: 'object' }, description: 'An empty object, {}.' } };
  const fitPost = (summary: string, statuses: number[], request: unknown, ok: Record<number, unknown>) => {
    const { responses, ...security } = guarded(...statuses);
    return {
      post: {
        summary,
        ...security,
        ...(request === undefined ? {} : { requestBody: { required: true, content: request } }),
        responses: { ...ok, ...responses },
      },
    };
  };
  const summaryAnswer = (description: string) => ({ description, content: json(fitJobSummarySchema) });
  Object.assign(paths, {
    '/v1/fit-jobs': fitPost(
      'Create a fit job (bring your own model)',
      [400, 409, 413, 415],
      json(createFitJobRequestSchema),
      {
        200: summaryAnswer('The same job existed already'),
        201: summaryAnswer('Created'),
      },
    ),
    '/v1/fit-jobs/{id}': {
      ...get('A fit job: state, uploads and status document', fitJobSummarySchema, [404], [jobIdParam]),
    },
    '/v1/fit-jobs/{id}/observations': {
      post: {
        ...fitPost(
          'Upload a batch of observations (idempotent per trajectory and step)',
          [400, 404, 409, 413, 415],
          {
            'application/x-ndjson': {
              schema: { type: 'string' },
              description: 'JSON lines {trajectory, step, phi, metric?} (docs/bring-your-own-model.md).',
            },
            'application/octet-stream': {
              schema: { type: 'string', format: 'binary' },
              description:
                'uint32 LE length L, L bytes of JSON lines without phi, then n x d float32 LE phi values, row-major.',
            },
          },
          { 200: { description: 'OK', content: json(observationUploadResponseSchema) } },
        ).post,
        parameters: [jobIdParam],
      },
    },
    '/v1/fit-jobs/{id}/labels': {
      post: {
        ...fitPost(
          'Upload the labels that predictions are scored on (once; the same labels again: 200)',
          [400, 404, 409, 413, 415],
          json(fitLabelsSchema),
          {
            200: { description: 'Stored before', content: json(inputUploadResponseSchema) },
            201: { description: 'Stored', content: json(inputUploadResponseSchema) },
          },
        ).post,
        parameters: [jobIdParam],
      },
    },
    '/v1/fit-jobs/{id}/predictions/{key}': {
      post: {
        ...fitPost(
          'Upload float32 predictions that observation lines name ({"predictions": {"evaluator", "key"}})',
          [400, 404, 409, 413, 415],
          {
            'application/octet-stream': {
              schema: { type: 'string', format: 'binary' },
              description: 'n (two classes) or n x classes float32 LE values, finite, on the uploaded labels.',
            },
          },
          {
            200: { description: 'Stored before', content: json(inputUploadResponseSchema) },
            201: { description: 'Stored', content: json(inputUploadResponseSchema) },
          },
        ).post,
        parameters: [jobIdParam, { name: 'key', in: 'path', required: true, schema: { type: 'string' } }],
      },
    },
    '/v1/fit-jobs/{id}/start': {
      post: {
        ...fitPost(
          'Start the fit (queued, or run by this server); a stalled job (its runner died) is re-queued',
          [400, 404, 409, 415, 503],
          emptyJson,
          {
            200: summaryAnswer('Started before (or cancelled)'),
            202: summaryAnswer('Started, or a stalled job re-queued'),
          },
        ).post,
        parameters: [jobIdParam],
      },
    },
    '/v1/fit-jobs/{id}/cancel': {
      post: {
        ...fitPost(
          'Cancel the fit: it stops, or never runs; a done or failed job is unchanged',
          [404, 415],
          emptyJson,
          {
            200: summaryAnswer('The job after the cancel'),
          },
        ).post,
        parameters: [jobIdParam],
      },
    },
  });
  return {
    openapi: '3.0.3',
    info: {
      title: 'MetricOpt value-function API',
      version: LIBRARY_VERSION,
      description:
        'Estimates of a black-box metric, their gradients and Guided-ES directions from a learned value function.',
    },
    paths,
    components: { schemas, ...(auth === 'none' ? {} : { securitySchemes: { [scheme]: securitySchemes[scheme] } }) },
  };
}

function idOf(schema: z.ZodType): string {
  const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
  if (!id) throw new Error('buildOpenApiDocument: schema has no id');
  return id;
}

const securitySchemes = {
  bearer: { type: 'http', scheme: 'bearer' },
  // OpenAPI 3.0 has no SigV4 scheme: the API Gateway convention, a signed Authorization header.
  sigv4: {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description: 'AWS Signature Version 4 (service lambda), checked by the function URL (AuthType AWS_IAM).',
  },
} as const;

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
