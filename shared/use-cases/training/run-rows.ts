import type { SparseDataset } from '../../data/dataset.js';
import { splitRows, type Split } from '../../data/split.js';
import { stratifiedSplit, withRareClass } from '../../data/image-set.js';
import { evaluationInput, groupLabelNoise, type ScoredRows, scoredRows } from '../../metrics/context-columns.js';
import { type ModelOutputs, modelHasNoEmbeddings, modelOutputs, readsEmbeddings } from './model-outputs.js';
import { evaluateWithRetries } from '../../metrics/retry-policy.js';
import type { MetricError } from '../../metrics/errors.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { RunConfig } from './recipes.js';
import { err, ok, type Result } from '../../util/result.js';
import { UseCaseError } from './errors.js';

/** The replicate's split of the data set: `cfg.split` (random 70/10/20 when absent), then `cfg.rareClass` applied to its training rows. */
export function datasetSplit(ds: SparseDataset, cfg: Pick<RunConfig, 'seed' | 'split' | 'rareClass'>): Split {
  const split = cfg.split
    ? stratifiedSplit(ds.labels, ds.classes, cfg.seed, cfg.split.fractions)
    : splitRows(ds.rows, cfg.seed);
  return cfg.rareClass
    ? { ...split, train: withRareClass(split.train, ds.labels, cfg.rareClass, cfg.seed + 3) }
    : split;
}

/**
 * The data set a run trains on: with `cfg.labelNoise`, positive training rows of group 1 (the
 * context column `group`: `--group-feature` or the context file) relabelled negative at that
 * rate, seeded by the run's seed; validation and test rows, and so every metric query, keep
 * their clean labels. The demo's replicates and training jobs (in one process or fanned out)
 * all train on this, so a job trains on what the demo trains on for the same settings.
 */
export function withLabelNoise(ds: SparseDataset, cfg: RunConfig): Result<SparseDataset, UseCaseError> {
  const rate = cfg.labelNoise ?? 0;
  if (rate <= 0) return ok(ds);
  const group = ds.context?.group;
  if (!group) {
    return err(
      new UseCaseError(
        'LABEL_NOISE_NEEDS_GROUP',
        'label noise needs a group column (--group-feature, a job\'s dataset.groupFeature, or a context file with a "group" column)',
      ),
    );
  }
  const train = replicateRows(datasetSplit(ds, cfg), cfg).train;
  return ok({ ...ds, labels: groupLabelNoise(ds.labels, group, train, rate, cfg.seed) });
}

/**
 * The rows of one replicate. With `selectionSplit: 'separate'` the validation split is halved:
 * meta-training observes the metric on one half (the value function's labels, best_observed),
 * every choice at meta-test (endpoints, dense-eval, random search, threshold search) is made
 * on the other, so no method is chosen on the numbers that produced it. With
 * `reportSplit: 'train-holdout'` (for choosing defaults) every 7th training row (10% of all)
 * is held out of pre-training and fine-tuning and reported on; the test split is not read.
 */
export function replicateRows(
  split: Split,
  cfg: Pick<RunConfig, 'selectionSplit' | 'reportSplit'>,
): { train: Int32Array; observe: Int32Array; select: Int32Array; report: Int32Array } {
  const separate = cfg.selectionSplit === 'separate';
  const holdout = cfg.reportSplit === 'train-holdout';
  return {
    train: holdout ? split.train.filter((_, i) => i % 7 !== 0) : split.train,
    observe: separate ? split.val.filter((_, i) => i % 2 === 0) : split.val,
    select: separate ? split.val.filter((_, i) => i % 2 === 1) : split.val,
    report: holdout ? split.train.filter((_, i) => i % 7 === 0) : split.test,
  };
}

/**
 * What the evaluator is told about a split of the data set: labels, the dataset rows (always)
 * and their context columns (when the data set carries any); the shape `registerSplit` takes.
 */
export function splitFor(ds: SparseDataset, rows: Int32Array, classes: number = ds.classes): ScoredRows {
  return { ...scoredRows(ds, rows), classes };
}

/**
 * Calls the evaluator once on the pre-trained model's validation predictions, so that a broken
 * evaluator (throws, NaN, out of range) stops the run at once with its own error instead of
 * after minutes of failed queries. A metric that reads embeddings gets the model's; a model
 * without an embedding head stops the run here (MODEL_HAS_NO_EMBEDDINGS).
 */
export async function probeEvaluator(
  model: AdaptedModel,
  evaluator: Evaluator,
  rows: Int32Array,
  labels: Int32Array,
  context?: Readonly<Record<string, Float64Array>>,
): Promise<Result<void, MetricError | UseCaseError>> {
  const reads = readsEmbeddings(evaluator);
  if (reads && (model.embed === undefined || model.embedDim === undefined)) return err(modelHasNoEmbeddings());
  const [out] = modelOutputs(model, new Float32Array(model.d), 1, rows, reads);
  const { scores, embeddings } = out as ModelOutputs;
  const on = { labels, classes: model.classes, rows, ...(context ? { context } : {}) };
  const r = await evaluateWithRetries(evaluator, evaluationInput(scores, on, embeddings));
  return r.ok ? ok(undefined) : r;
}
