import type { SparseDataset } from '../../data/dataset.js';
import { BalancedSampler } from '../../data/sampler.js';
import { buildAdaptedModel } from '../../models/model-spec.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import { err, ok } from '../../util/result.js';
import { pretrainModelSpec } from './pretrain.js';
import type { RunConfig } from './recipes.js';
import { loadPretrained, pretrainKey, type RunCache, savePretrained } from './run-cache.js';
import { datasetSplit, probeEvaluator, replicateRows, splitFor } from './run-rows.js';

/**
 * What every trainer of a job builds first, the same from the same seed: the split, the
 * class-balanced sampler, the pre-trained model (the caller disposes it) and the evaluator
 * probed once on it, so a broken evaluator fails before any work.
 */
export async function prepareTraining(
  cfg: RunConfig,
  deps: { dataset: SparseDataset; evaluator: Evaluator; progress: ProgressReporter; cache?: RunCache | undefined },
) {
  const ds = deps.dataset;
  const rows = replicateRows(datasetSplit(ds, cfg), cfg);
  const valRows = rows.observe;
  const valLabels = Int32Array.from(valRows, (r) => ds.labels[r] as number);
  const sampler = new BalancedSampler(rows.train, ds.labels, ds.classes);
  const cache = deps.cache;
  const modelKey = cache ? pretrainKey(ds, rows.train, cfg, cache.backend) : '';
  let spec = cache ? await loadPretrained(cache, modelKey) : undefined;
  if (spec) {
    deps.progress.start('pre-train (reused from the run cache)', 1);
    deps.progress.end();
  } else {
    const pretrained = await pretrainModelSpec(ds, rows.train, cfg, deps.progress);
    if (!pretrained.ok) return pretrained;
    spec = pretrained.value;
    if (cache) await savePretrained(cache, modelKey, spec);
  }
  const model = buildAdaptedModel(spec, ds);
  // What the evaluator is told with every validation query: labels, dataset rows, context.
  const valSplit = { ...splitFor(ds, valRows, model.classes), labels: valLabels };
  let probed: Awaited<ReturnType<typeof probeEvaluator>>;
  try {
    probed = await probeEvaluator(model, deps.evaluator, valRows, valLabels, valSplit.context);
  } catch (e) {
    model.dispose();
    throw e;
  }
  if (!probed.ok) {
    model.dispose();
    return err(probed.error);
  }
  return ok({ model, spec, modelKey, valRows, valLabels, valSplit, sampler });
}
