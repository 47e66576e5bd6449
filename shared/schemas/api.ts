import { z } from 'zod';
import { checkpointIdSchema, metricRefSchema } from './checkpoint.js';

/**
 * Wire formats of the value-function API (functions/value-api). The HTTP edge validates with
 * these, the TypeScript client types come from them, and the OpenAPI document is generated
 * from them: one source of truth. Dimension checks need the checkpoint, so they happen in the
 * use-case (shared/use-cases/serving/serve-guidance.ts), not here.
 */

/** One adapter vector phi. JSON has no NaN/Infinity; numbers that overflow to Infinity are rejected. */
export const phiRowSchema = z.array(z.number()).meta({ description: 'One adapter parameter vector phi (d entries).' });

/** A single phi or a batch of them (row-major). */
export const phiInputSchema = z
  .union([
    phiRowSchema.min(1).meta({ description: 'One adapter parameter vector phi (d entries).' }),
    z.array(phiRowSchema).min(1),
  ])
  .meta({ description: 'One phi (d numbers) or a batch of them (n x d).' });

export const predictRequestSchema = z.object({ phi: phiInputSchema }).meta({ id: 'PredictRequest' });
export type PredictRequest = z.infer<typeof predictRequestSchema>;

export const predictResponseSchema = z
  .object({
    id: checkpointIdSchema,
    version: z.number().int().positive(),
    metric: metricRefSchema,
    values: z.array(z.number()).meta({ description: 'Estimated metric per row, in its natural direction.' }),
    normalised: z.array(z.number()).meta({ description: 'The same estimates normalised to lower-is-better.' }),
  })
  .meta({ id: 'PredictResponse' });
export type PredictResponse = z.infer<typeof predictResponseSchema>;

export const gradientRequestSchema = predictRequestSchema;
export type GradientRequest = PredictRequest;

export const gradientResponseSchema = predictResponseSchema
  .extend({
    gradients: z
      .array(z.array(z.number()))
      .meta({ description: 'd(normalised value)/d(phi) per row (n x d): descend it to improve the metric.' }),
  })
  .meta({ id: 'GradientResponse' });
export type GradientResponse = z.infer<typeof gradientResponseSchema>;

export const MAX_GUIDE_GRADIENTS = 16;

/**
 * guide's phi and each loss gradient: exactly d numbers, d of the value function (its
 * GET /v1/value-functions/{id} answer); the schema can state only d >= 1, the server checks d.
 */
const guidePhiSchema = z.array(z.number()).min(1).meta({
  description:
    'd numbers, d of the value function (GET /v1/value-functions/{id}: d); others are 400 DIMENSION_MISMATCH.',
});

export const guideRequestSchema = z
  .object({
    phi: guidePhiSchema,
    lossGradients: z
      .array(guidePhiSchema)
      .max(MAX_GUIDE_GRADIENTS)
      .meta({ description: 'The last k loss gradients (k = 3 in the paper); their span guides the search.' }),
    P: z.number().int().min(1).max(64).optional().meta({ description: 'Antithetic pairs (default 3).' }),
    sigma2: z
      .number()
      .positive()
      .max(1e6)
      .optional()
      .meta({ description: 'Perturbation variance s^2 (default 0.01).' }),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1)
      .optional()
      .meta({ description: 'Seed of the perturbations; random when omitted (returned either way).' }),
  })
  .meta({ id: 'GuideRequest' });
export type GuideRequest = z.infer<typeof guideRequestSchema>;

export const guideResponseSchema = z
  .object({
    id: checkpointIdSchema,
    version: z.number().int().positive(),
    metric: metricRefSchema,
    direction: z
      .array(z.number())
      .meta({ description: 'Guided-ES descent direction u (MetricOpt Eq. 4): step phi <- phi - alpha * u.' }),
    value: z.number().meta({ description: 'Estimated metric at phi, natural direction.' }),
    normalised: z.number().meta({ description: 'The same estimate, lower is better.' }),
    P: z.number().int(),
    sigma2: z.number(),
    seed: z.number().int(),
  })
  .meta({ id: 'GuideResponse' });
export type GuideResponse = z.infer<typeof guideResponseSchema>;

/** A listed checkpoint version the server cannot serve (truncated, schema-invalid, gone). */
export const invalidVersionSchema = z.object({
  version: z.number().int().positive(),
  code: z.string().meta({ description: 'CHECKPOINT_INVALID, or VERSION_NOT_FOUND when the object is gone.' }),
  message: z.string(),
  since: z.string().meta({ description: 'When the server first found it invalid (ISO 8601).' }),
});

export const valueFunctionSummarySchema = z
  .object({
    id: checkpointIdSchema,
    versions: z.array(z.number().int().positive()),
    latest: z.number().int().positive(),
    serving: z
      .number()
      .int()
      .positive()
      .meta({ description: 'The version unpinned requests get: the newest one that loads (normally `latest`).' }),
    invalidVersions: z
      .array(invalidVersionSchema)
      .optional()
      .meta({ description: 'Listed versions that cannot be served (absent when there are none).' }),
    d: z.number().int().positive(),
    metric: metricRefSchema,
    recipe: z.string(),
    dataset: z.string(),
    adapter: z.object({ kind: z.string(), d: z.number().int() }),
    members: z.number().int().positive(),
    createdAt: z.string(),
    training: z.record(z.string(), z.unknown()),
    healthy: z.boolean().nullable().meta({
      description:
        'Held-out Spearman of the served version at least 0.7 (false: its estimates may not rank candidates well; null: not measured).',
    }),
  })
  .meta({
    id: 'ValueFunctionSummary',
    description: 'A value function; d, metric and training stats are those of `serving`.',
  });
export type ValueFunctionSummary = z.infer<typeof valueFunctionSummarySchema>;

export const valueFunctionListResponseSchema = z
  .object({ valueFunctions: z.array(valueFunctionSummarySchema) })
  .meta({ id: 'ValueFunctionList' });
export type ValueFunctionListResponse = z.infer<typeof valueFunctionListResponseSchema>;

export const healthResponseSchema = z
  .object({
    status: z.literal('ok'),
    version: z.string(),
    details: z
      .object({
        invalidCheckpoints: z.array(invalidVersionSchema.extend({ id: checkpointIdSchema })),
      })
      .optional()
      .meta({ description: 'Present when some listed checkpoint versions cannot be served (they are skipped).' }),
  })
  .meta({ id: 'Health' });
export type HealthResponse = z.infer<typeof healthResponseSchema>;

export const errorResponseSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable machine-readable code, e.g. DIMENSION_MISMATCH.' }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: 'Error' });
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

/** Header carrying the served checkpoint version on binary responses. */
export const VERSION_HEADER = 'x-value-function-version';
export const BINARY_CONTENT_TYPE = 'application/octet-stream';

/** `?version=`: plain decimal digits of a positive integer (`0x1`, `1e0`, `+1` are refused). */
const versionText = z
  .string()
  .optional()
  .refine((v) => v === undefined || (/^[0-9]{1,15}$/.test(v) && Number(v) >= 1), {
    error: (issue) =>
      `version must be a positive integer in plain decimal digits, got '${String(issue.input).slice(0, 40)}'`,
  })
  .meta({
    param: { description: 'Pin a checkpoint version (plain decimal digits); the newest servable one when omitted.' },
    type: 'integer',
    minimum: 1,
  });
/** The query of the routes that read a value function: an optional pinned `version`. */
export const versionQuerySchema = z.object({ version: versionText });
