import { z } from 'zod';
import { checkpointIdSchema } from './checkpoint.js';
import { fitJobSpecSchema, jobIdSchema, jobStatusSchema, trainingOverridesSchema } from './job.js';

/**
 * Wire formats of the fit-job routes (functions/value-api/fit-routes.ts): create a fit job,
 * upload observation batches (shared/schemas/observations.ts), start it, read its status.
 */
/**
 * What a fit job over the API may ask for: a shared server runs it, so its size is bounded
 * (the CLI's `metricopt fit`, run by the operator, is not). With the most of each, a fit is
 * slow but finite; the server's wall-clock budget (`serve --fit-budget-s`) bounds the rest.
 */
export const FIT_LIMITS = {
  hiddenLayers: 6,
  hiddenWidth: 512,
  epochs: 2000,
  ensemble: 8,
  taskBatch: 256,
  innerSteps: 64,
  /** Observations stored in one job (all its batches). */
  observations: 100_000,
} as const;

const metaTrainOverrides = trainingOverridesSchema.shape.metaTrain.unwrap();
const trainOverrides = metaTrainOverrides.shape.train.unwrap();
const boundedMetaTrain = metaTrainOverrides
  .extend({
    ensemble: z.number().int().min(1).max(FIT_LIMITS.ensemble),
    train: trainOverrides
      .extend({
        hidden: z.array(z.number().int().min(1).max(FIT_LIMITS.hiddenWidth)).min(1).max(FIT_LIMITS.hiddenLayers),
        epochs: z.number().int().min(1).max(FIT_LIMITS.epochs),
        taskBatch: z.number().int().min(1).max(FIT_LIMITS.taskBatch),
        innerSteps: z.number().int().min(1).max(FIT_LIMITS.innerSteps),
      })
      .partial(),
  })
  .partial();

export const createFitJobRequestSchema = fitJobSpecSchema
  .omit({ format: true, schemaVersion: true, observations: true })
  .extend({ overrides: z.object({ metaTrain: boundedMetaTrain }).strict().partial().default({}) })
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
    state: z
      .enum(['created', 'queued', 'running', 'stalled', 'interrupted', 'done', 'failed', 'cancelled'])
      .meta({ description: 'stalled: running, but its runner stopped renewing its lease (start re-queues it).' }),
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
