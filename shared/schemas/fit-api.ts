import { z } from 'zod';
import { checkpointIdSchema } from './checkpoint.js';
import { fitJobSpecSchema, jobIdSchema, jobStatusSchema } from './job.js';

/**
 * Wire formats of the fit-job routes (functions/value-api/fit-routes.ts): create a fit job,
 * upload observation batches (shared/schemas/observations.ts), start it, read its status.
 */
export const createFitJobRequestSchema = fitJobSpecSchema
  .omit({ format: true, schemaVersion: true, observations: true })
  .meta({ id: 'CreateFitJobRequest' });
export type CreateFitJobRequest = z.input<typeof createFitJobRequestSchema>;

export const observationUploadResponseSchema = z
  .object({
    accepted: z.number().int().meta({ description: 'New (trajectory, step) observations stored.' }),
    duplicates: z
      .number()
      .int()
      .meta({ description: 'Observations already stored with the same values (a retry), not counted twice.' }),
    total: z.number().int(),
    trajectories: z.number().int(),
    d: z.number().int(),
  })
  .meta({ id: 'ObservationUploadResponse' });
export type ObservationUploadResponse = z.infer<typeof observationUploadResponseSchema>;

export const fitJobSummarySchema = z
  .object({
    jobId: jobIdSchema,
    valueFunctionId: checkpointIdSchema,
    state: z.enum(['created', 'queued', 'running', 'interrupted', 'done', 'failed']),
    uploads: z.object({
      observations: z.number().int(),
      trajectories: z.number().int(),
      d: z.number().int().nullable(),
      predictionLines: z
        .number()
        .int()
        .meta({ description: 'Lines whose metric an evaluator scores from uploaded predictions.' }),
      labels: z.object({ n: z.number().int(), classes: z.number().int() }).nullable(),
      predictions: z.number().int().meta({ description: 'Prediction sets uploaded.' }),
    }),
    startedVia: z.enum(['queue', 'in-process']).nullable(),
    status: jobStatusSchema.nullable().meta({ description: 'The job status document once the fit runs.' }),
  })
  .meta({ id: 'FitJobSummary' });
export type FitJobSummaryResponse = z.infer<typeof fitJobSummarySchema>;

export const inputUploadResponseSchema = z
  .object({
    created: z.boolean().meta({ description: 'false: the same content was stored already (a retry).' }),
    n: z.number().int().optional(),
    classes: z.number().int().optional(),
    key: z.string().optional(),
    values: z.number().int().optional(),
  })
  .meta({ id: 'FitInputUploadResponse' });

/** Content types of an observation upload: JSON lines, or the binary form (phi as float32). */
export const JSON_LINES_TYPES = ['application/x-ndjson', 'application/jsonl', 'application/json'] as const;
