import { z } from 'zod';

/**
 * Observations recorded by a remote training loop (bring your own model, `metricopt fit`,
 * POST /v1/fit-jobs/{id}/observations): JSON lines, one object per line,
 *
 *   {"trajectory": "run-3", "step": 0, "phi": [0.1, -0.4, ...], "metric": 0.183}
 *
 * `phi` is the adapter vector at that step (the same length d on every line), `metric` the
 * black-box metric observed there in its natural direction (only on the few lines where it was
 * observed). `predictions` names predictions to be scored by a registered evaluator instead of
 * a value; it is defined here but not accepted yet (OBSERVATION_PREDICTIONS_UNSUPPORTED).
 */
export const MAX_TRAJECTORY_NAME = 128;
export const MAX_STEP = 1_000_000;
export const MAX_PHI_D = 4096;

export const predictionsRefSchema = z
  .object({
    /** The registered evaluator that scores them (the evaluation queue's registry). */
    evaluator: z.string().min(1),
    /** Object-store key of the float32 predictions on the evaluator's registered split. */
    key: z.string().min(1),
  })
  .strict();

export const observationLineSchema = z
  .object({
    trajectory: z
      .string()
      .min(1, 'trajectory must be a non-empty string')
      .max(MAX_TRAJECTORY_NAME, `trajectory names have at most ${MAX_TRAJECTORY_NAME} characters`),
    step: z.number().int('step must be an integer').min(0, 'step must be >= 0').max(MAX_STEP),
    phi: z
      .array(z.number({ error: 'phi entries must be finite numbers' }))
      .min(1, 'phi must have at least one entry')
      .max(MAX_PHI_D, `phi has at most ${MAX_PHI_D} entries`),
    metric: z.number({ error: 'metric must be a finite number' }).optional(),
    predictions: predictionsRefSchema.optional(),
  })
  .strict()
  .refine((o) => !(o.metric !== undefined && o.predictions !== undefined), {
    message: 'a line carries metric or predictions, not both',
  });
export type ObservationLine = z.infer<typeof observationLineSchema>;

/** One line's problem: 1-based line number (of the file or the uploaded batch) and the reason. */
export const observationIssueSchema = z.object({ line: z.number().int(), reason: z.string() }).strict();
export type ObservationIssue = z.infer<typeof observationIssueSchema>;
