import { z } from 'zod';

export const methodNames = [
  'ce',
  'ce_finetune',
  'ce_finetune_natural',
  'ce_finetune_dense_eval',
  'metric_learning_finetune',
  'metric_learning_finetune_dense_eval',
  'random_search',
  'random_search_total',
  'cma_es',
  'threshold',
  'prior_correction',
  'best_observed',
  'metricopt',
] as const;
export type MethodName = (typeof methodNames)[number];
/** Every method but metricopt: what metricopt is compared against. */
export const baselineNames = methodNames.filter((m) => m !== 'metricopt');
/**
 * The baselines that use the loss only (no metric query chooses their phi, except dense-eval's);
 * the metric_learning_* ones run for metrics of the embeddings only (absent from other reports).
 */
export const lossOnlyBaselines = [
  'ce_finetune',
  'ce_finetune_natural',
  'ce_finetune_dense_eval',
  'metric_learning_finetune',
  'metric_learning_finetune_dense_eval',
] as const;

const interval = z.tuple([z.number(), z.number()]).nullable();

const methodResult = z.object({
  /** Mean over replicates of each replicate's mean over meta-test seeds. */
  mean: z.number(),
  /** 95% Student-t interval of that mean across replicates; null with one replicate. */
  ci95: interval,
  /** Sample std across replicates (0 for one replicate). */
  std: z.number(),
  /** Each replicate's mean over its seeds; null when every test score of it failed. */
  perReplicate: z.array(z.number().nullable()),
  /** Test values, [replicate][meta-test seed]; null where the evaluator still failed after its retries. */
  runs: z.array(z.array(z.number().nullable())),
  /** Runs whose test score is missing (left out of mean and interval). */
  missing: z.number().int().nonnegative(),
  /** Real metric queries per run at meta-test. */
  queries: z.number().int().nonnegative(),
  /** The same plus the meta-training queries the method relies on (value function, observations), per replicate. */
  totalQueries: z.number().int().nonnegative(),
  /** Validation value of the chosen phi where the method knows it, [replicate][seed]. */
  valRuns: z.array(z.array(z.number().nullable())),
});

const comparison = z.object({
  /** metricopt minus the baseline, natural direction, mean over replicates. */
  diff: z.number(),
  ci95: interval,
  verdict: z.enum(['better', 'tie', 'worse', 'no-interval']),
  perReplicate: z.array(z.number()),
});

/** Optimistic oracles on the reported rows (shared/report/headroom.ts), natural direction. */
const headroomValues = z.object({
  globalThreshold: z.number().nullable(),
  contextRule: z.number().nullable(),
  rule: z.enum(['bayes-instance-cost', 'expected-value-ranking', 'group-thresholds']).nullable(),
});

const headroomSummary = z.object({
  /** Labelled for every reader: these are chosen on the rows they are scored on. */
  label: z.literal('optimistic oracle on the reported rows, from the pre-trained scores'),
  globalThreshold: z.object({ mean: z.number(), ci95: interval }).nullable(),
  contextRule: z.object({ mean: z.number(), ci95: interval }).nullable(),
  rule: headroomValues.shape.rule,
  /** The oracle the gap is measured to: contextRule when known, else globalThreshold. */
  oracle: z.enum(['contextRule', 'globalThreshold']).nullable(),
  /** The baseline with the best mean (natural direction) and that mean. */
  bestBaseline: z.string().nullable(),
  /** Share of the gap between the best baseline and the oracle that metricopt closed (means; 1 = all). */
  metricoptGapClosed: z.number().nullable(),
});

const health = z.object({
  id: z.string(),
  version: z.number().int(),
  heldOutMae: z.number().nullable(),
  constantMae: z.number().nullable(),
  spearman: z.number().nullable(),
  heldOutObservations: z.number().int(),
  healthy: z.boolean().nullable(),
});

/** The demo's report.json: metric values in their natural direction, over replicates. */
export const demoReportSchema = z.object({
  dataset: z.string(),
  metric: z.string(),
  direction: z.enum(['minimize', 'maximize']),
  recipe: z.enum(['paper', 'tuned']),
  /** 'test', or 'train-holdout' when the numbers come from rows held out of training (tuning). */
  reportSplit: z.enum(['test', 'train-holdout']),
  selectionSplit: z.enum(['separate', 'shared']),
  /** Meta-test seeds within each replicate (offsets from the replicate's base seed). */
  seeds: z.array(z.number().int()),
  results: z.partialRecord(z.enum(methodNames), methodResult),
  /** Methods not run, with the reason. */
  skipped: z.partialRecord(z.enum(methodNames), z.string()),
  /** Where metricopt's chosen endpoints came from, counted over all runs. */
  metricoptEndpoints: z.object({
    path: z.number().int(),
    start: z.number().int(),
    decision_shift: z.number().int(),
    best_observed: z.number().int(),
    /** A point of the value-function-guided search with real queries (--online-queries). */
    online: z.number().int().optional(),
  }),
  /** metricopt against each baseline that ran. */
  comparisons: z.partialRecord(z.enum(methodNames), comparison),
  replicates: z.array(
    z.object({
      index: z.number().int(),
      seed: z.number().int(),
      /** metricopt against each baseline within this replicate, paired over its meta-test seeds. */
      comparisons: z.partialRecord(z.enum(methodNames), comparison),
      headroom: headroomValues.optional(),
      valueFunction: health,
      metaTrain: z.object({ tasks: z.number().int(), queriesSent: z.number().int(), queriesFailed: z.number().int() }),
      /** Seconds per stage; metaTrainS = trajectoriesS + queriesS + fitS (+ saving the checkpoint). */
      timings: z.object({
        pretrainS: z.number(),
        metaTrainS: z.number(),
        trajectoriesS: z.number(),
        queriesS: z.number(),
        fitS: z.number(),
        metaTestS: z.number(),
        lossOnlyStepMs: z.number(),
        metricoptStepMs: z.number(),
      }),
    }),
  ),
  headroom: headroomSummary.optional(),
  /** The last replicate's checkpoint (the version `serve` answers with). */
  valueFunction: health,
  backend: z.string(),
  notes: z.array(z.string()),
  config: z.record(z.string(), z.unknown()),
});
export type DemoReport = z.infer<typeof demoReportSchema>;
export type MethodResult = z.infer<typeof methodResult>;
