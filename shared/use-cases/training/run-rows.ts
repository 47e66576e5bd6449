import type { SparseDataset } from '../../data/dataset.js';
import { splitRows, type Split } from '../../data/split.js';
import { stratifiedSplit, withRareClass } from '../../data/image-set.js';
import { evaluationInput, type ScoredRows, scoredRows } from '../../metrics/context-columns.js';
import { type ModelOutputs, modelOutputs, readsEmbeddings } from './model-outputs.js';
import { evaluateWithRetries } from '../../metrics/retry-policy.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { RunConfig } from './recipes.js';

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
): Promise<void> {
  const [out] = modelOutputs(model, new Float32Array(model.d), 1, rows, readsEmbeddings(evaluator));
  const { scores, embeddings } = out as ModelOutputs;
  const on = { labels, classes: model.classes, rows, ...(context ? { context } : {}) };
  const r = await evaluateWithRetries(evaluator, evaluationInput(scores, on, embeddings));
  if (!r.ok) throw r.error;
}
