import { z } from 'zod';
import { contextColumnNameSchema, MAX_CONTEXT_COLUMNS } from './evaluation.js';

/**
 * Observations recorded by a remote training loop (bring your own model, `metricopt fit`,
 * POST /v1/fit-jobs/{id}/observations): JSON lines, one object per line,
 *
 *   {"trajectory": "run-3", "step": 0, "phi": [0.1, -0.4, ...], "metric": 0.183}
 *
 * `phi` is the adapter vector at that step (the same length d on every line), `metric` the
 * black-box metric observed there in its natural direction (only on the few lines where it was
 * observed). Instead of `metric`, a line may carry `predictions`: the name of float32 predictions
 * uploaded to the job (on the labels uploaded to it), scored when the fit runs by a registered
 * evaluator, through the evaluation queue where one is configured, so the user's scorer never
 * runs in their training loop (shared/use-cases/byom/fit-inputs.ts).
 */
export const MAX_TRAJECTORY_NAME = 128;
export const MAX_STEP = 1_000_000;
export const MAX_PHI_D = 4096;

/** A predictions name: one object-store key segment. */
export const predictionsKeySchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'predictions keys are letters, digits, ".", "_" or "-"');

export const predictionsRefSchema = z
  .object({
    /** The registered evaluator that scores them (the evaluation queue's registry). */
    evaluator: z.string().min(1).max(200),
    /** Name of predictions uploaded to the job (`POST /v1/fit-jobs/{id}/predictions/{key}`, or `fit --predictions DIR`). */
    key: predictionsKeySchema,
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
export type PredictionsRef = z.infer<typeof predictionsRefSchema>;

/**
 * The labels predictions are scored on: one per example, each in [0, classes). Optionally the
 * examples' `rows` (their 0-based indices in the user's data set; default 0..n-1, the order of
 * `labels`) and per-row `context` columns (one finite number per example each), which reach the
 * evaluator as EvaluationInput.rows / .context.
 */
export const MAX_LABELS = 1_000_000;
export const MAX_CLASSES = 1000;
export const fitLabelsSchema = z
  .object({
    classes: z.number().int().min(2).max(MAX_CLASSES),
    labels: z
      .array(
        z
          .number()
          .int('labels must be integers')
          .min(0)
          .max(MAX_CLASSES - 1, 'every label must be < classes'),
      )
      .min(1)
      .max(MAX_LABELS)
      .meta({ description: 'One class per example, each in [0, classes).' }),
    rows: z
      .array(
        z
          .number()
          .int('rows must be integers')
          .min(0, 'rows must be >= 0')
          .max(2 ** 31 - 1),
      )
      .min(1)
      .max(MAX_LABELS)
      .optional()
      .meta({
        description: "The examples' 0-based row indices in your data set: one per label, none repeated.",
        uniqueItems: true,
      }),
    context: z
      .record(
        contextColumnNameSchema,
        z
          .array(z.number({ error: 'context values must be finite numbers' }))
          .min(1)
          .max(MAX_LABELS),
      )
      .refine((c) => Object.keys(c).length <= MAX_CONTEXT_COLUMNS, {
        message: `at most ${MAX_CONTEXT_COLUMNS} context columns`,
      })
      .optional()
      .meta({ description: 'Columns of one finite number per label.', maxProperties: MAX_CONTEXT_COLUMNS }),
  })
  .strict()
  .refine((l) => l.labels.every((v) => v < l.classes), { message: 'every label must be < classes' })
  .refine((l) => l.rows === undefined || l.rows.length === l.labels.length, {
    message: 'rows must have one entry per label',
    path: ['rows'],
  })
  .refine((l) => l.rows === undefined || new Set(l.rows).size === l.rows.length, {
    message: 'rows must not repeat a row',
    path: ['rows'],
  })
  .refine((l) => Object.values(l.context ?? {}).every((v) => v.length === l.labels.length), {
    message: 'every context column must have one value per label',
    path: ['context'],
  })
  .meta({ id: 'FitLabels' });
export type FitLabels = z.infer<typeof fitLabelsSchema>;

/** One line's problem: 1-based line number (of the file or the uploaded batch) and the reason. */
export const observationIssueSchema = z.object({ line: z.number().int(), reason: z.string() }).strict();
export type ObservationIssue = z.infer<typeof observationIssueSchema>;
