import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import {
  errorResponseSchema,
  gradientResponseSchema,
  guideRequestSchema,
  guideResponseSchema,
  healthResponseSchema,
  predictRequestSchema,
  predictResponseSchema,
  valueFunctionListResponseSchema,
  valueFunctionSummarySchema,
} from '../../shared/schemas/api.js';
import {
  createFitJobRequestSchema,
  fitJobSummarySchema,
  inputUploadResponseSchema,
  observationUploadResponseSchema,
} from '../../shared/schemas/fit-api.js';
import { jobStatusResponseSchema, jobStatusSchema } from '../../shared/schemas/job.js';
import { fitLabelsSchema } from '../../shared/schemas/observations.js';
import { LIBRARY_VERSION } from '../../shared/version.js';
import type { AuthMode, ValueApiEnv } from './routes.js';

/**
 * The OpenAPI 3 document of an app: its paths generated from the routes it declared
 * (routes.ts, through @hono/zod-openapi), its component schemas from the zod schemas in
 * shared/schemas by zod's own JSON Schema generator. (zod-to-openapi's renderings of the same
 * schemas drop the safe-integer bounds and inline nullable references; zod's keep every
 * constraint the schemas state.)
 */
export function buildOpenApiDocument(
  app: OpenAPIHono<ValueApiEnv>,
  auth: AuthMode = 'api-key',
): Record<string, unknown> {
  const { paths } = app.getOpenAPIDocument({ openapi: '3.0.3', info: { title: '', version: '' } });
  const scheme = auth === 'iam' ? 'sigv4' : 'bearer';
  return {
    openapi: '3.0.3',
    info: {
      title: 'MetricOpt value-function API',
      version: LIBRARY_VERSION,
      description:
        'Estimates of a black-box metric, their gradients and Guided-ES directions from a learned value function.',
    },
    paths,
    components: {
      schemas: componentSchemas(),
      ...(auth === 'none' ? {} : { securitySchemes: { [scheme]: securitySchemes[scheme] } }),
    },
  };
}

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
  jobStatusResponseSchema,
];

function componentSchemas(): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const schema of components) {
    const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
    if (!id) throw new Error('buildOpenApiDocument: schema has no id');
    registry.add(schema, { id });
  }
  const generated = z.toJSONSchema(registry, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }).schemas as Record<string, Record<string, unknown>>;
  return Object.fromEntries(Object.entries(generated).map(([id, { $id: _, ...schema }]) => [id, schema]));
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
