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
import { LIBRARY_VERSION } from '../../shared/version.js';

/** The OpenAPI 3 document, generated from the zod schemas in shared/schemas/api.ts. */
export function buildOpenApiDocument(): Record<string, unknown> {
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
  const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  const versionParam = {
    name: 'version',
    in: 'query',
    required: false,
    description: 'Pin a checkpoint version; the latest when omitted.',
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
  const batchRoute = (summary: string, request: z.ZodType, response: z.ZodType) => ({
    post: {
      summary,
      security: [{ bearer: [] }],
      parameters: [idParam, versionParam],
      requestBody: { required: true, content: { ...json(request), ...binary } },
      responses: {
        200: {
          description: 'OK',
          headers: versionHeader,
          content: { ...json(response), ...binaryAnswer },
        },
        ...errors(400, 401, 404, 413, 415),
      },
    },
  });
  const paths = {
    '/healthz': {
      get: { summary: 'Liveness', responses: { 200: { description: 'OK', content: json(healthResponseSchema) } } },
    },
    '/v1/value-functions': {
      get: {
        summary: 'List value functions',
        security: [{ bearer: [] }],
        responses: { 200: { description: 'OK', content: json(valueFunctionListResponseSchema) }, ...errors(401) },
      },
    },
    '/v1/value-functions/{id}': {
      get: {
        summary: 'Describe one value function',
        security: [{ bearer: [] }],
        parameters: [idParam],
        responses: { 200: { description: 'OK', content: json(valueFunctionSummarySchema) }, ...errors(401, 404) },
      },
    },
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
    '/v1/value-functions/{id}/guide': {
      post: {
        summary: 'Guided-ES descent direction (MetricOpt Eq. 3-4)',
        security: [{ bearer: [] }],
        parameters: [idParam, versionParam],
        requestBody: { required: true, content: json(guideRequestSchema) },
        responses: { 200: { description: 'OK', content: json(guideResponseSchema) }, ...errors(400, 401, 404, 413) },
      },
    },
  };
  return {
    openapi: '3.0.3',
    info: {
      title: 'MetricOpt value-function API',
      version: LIBRARY_VERSION,
      description:
        'Estimates of a black-box metric, their gradients and Guided-ES directions from a learned value function.',
    },
    paths,
    components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  };
}

function idOf(schema: z.ZodType): string {
  const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
  if (!id) throw new Error('buildOpenApiDocument: schema has no id');
  return id;
}

const errorText: Record<number, string> = {
  400: 'Malformed body, wrong dimension, non-finite number or empty batch',
  401: 'Missing or invalid API key',
  404: 'Unknown value function or version',
  413: 'Body or batch too large',
  415: 'Unsupported content type',
};
