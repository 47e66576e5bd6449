import { z } from 'zod';

const methodResult = z.object({
  mean: z.number(),
  std: z.number(),
  runs: z.array(z.number()),
  /** Real metric queries per run (the same for every seed). */
  queries: z.number().int().nonnegative(),
  valRuns: z.array(z.number().nullable()).optional(),
});

export const methodNames = ['ce', 'ce_finetune', 'ce_finetune_dense_eval', 'random_search', 'metricopt'] as const;

/** The demo's report.json: metric values in their natural direction, TEST split, over seeds. */
export const demoReportSchema = z.object({
  dataset: z.string(),
  metric: z.string(),
  direction: z.enum(['minimize', 'maximize']),
  recipe: z.enum(['paper', 'tuned']),
  seeds: z.array(z.number().int()),
  results: z.object({
    ce: methodResult,
    ce_finetune: methodResult,
    ce_finetune_dense_eval: methodResult,
    random_search: methodResult,
    metricopt: methodResult,
  }),
  valueFunction: z.object({
    id: z.string(),
    version: z.number().int(),
    heldOutMae: z.number().nullable(),
    constantMae: z.number().nullable(),
    spearman: z.number().nullable(),
    heldOutObservations: z.number().int(),
    healthy: z.boolean().nullable(),
  }),
  metaTrain: z.object({ tasks: z.number().int(), queriesSent: z.number().int(), queriesFailed: z.number().int() }),
  timings: z.object({
    pretrainS: z.number(),
    metaTrainS: z.number(),
    metaTestS: z.number(),
    lossOnlyStepMs: z.number(),
    metricoptStepMs: z.number(),
  }),
  backend: z.string(),
  notes: z.array(z.string()),
  config: z.record(z.string(), z.unknown()),
});
export type DemoReport = z.infer<typeof demoReportSchema>;
