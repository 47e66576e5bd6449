import { z } from 'zod';
import { checkpointContentSchema } from './checkpoint.js';
import { jobStatusSchema } from './job.js';

/**
 * A job's result document, `jobs/<id>/result.json`: the fitted content, stashed (a conditional
 * create) before it is saved as a checkpoint version, so a job killed between the two saves one
 * version only. Its shape depends on the kind of job (the job spec's `format`), as written since
 * the first release:
 * - a training job (`metricopt.job`): the checkpoint content itself;
 * - a fit job (`metricopt.fit-job`): the content, its held-out health and the status at the fit.
 */
export const valueFunctionHealthSchema = z
  .object({
    heldOutMae: z.number().nullable(),
    constantMae: z.number().nullable(),
    spearman: z.number().nullable(),
    heldOutObservations: z.number().int().min(0),
  })
  .strict();
export type ValueFunctionHealth = z.infer<typeof valueFunctionHealthSchema>;

export const trainingJobResultSchema = checkpointContentSchema;
export type TrainingJobResult = z.infer<typeof trainingJobResultSchema>;

export const fitJobResultSchema = z
  .object({ checkpoint: checkpointContentSchema, health: valueFunctionHealthSchema, status: jobStatusSchema })
  .strict();
export type FitJobResult = z.infer<typeof fitJobResultSchema>;

/** The result schema of each kind of job. */
export const jobResultSchemas = { training: trainingJobResultSchema, fit: fitJobResultSchema } as const;
export type JobKind = keyof typeof jobResultSchemas;
export type JobResult<K extends JobKind> = z.infer<(typeof jobResultSchemas)[K]>;
