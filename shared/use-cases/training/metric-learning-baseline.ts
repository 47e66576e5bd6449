import { BatchedOptimizer } from '../../method/optimizers.js';
import { denormalise } from '../../metrics/evaluator.js';
import { supervisedContrastiveLoss } from '../../models/metric-learning-loss.js';
import { ok, type Result } from '../../util/result.js';
import type { UseCaseError } from './errors.js';
import type { MetaTestConfig, MetaTestDeps, SeedResult } from './meta-test-config.js';
import type { SeedQueries } from './meta-test-queries.js';
import { readsEmbeddings } from './model-outputs.js';

/**
 * Step size (Adam) and temperature of the metric-learning baseline, the recipes'
 * `metaTest.metricLoss`. Chosen on validation rows only (bench/metric-loss-select.mjs; bench/RESULTS.md
 * "Metric-learning baseline (issue 24, branch images4)"): of a 4 x 4 grid on the cached
 * Fashion-MNIST backbone, the best mean validation recall@1 over 10 and 50 steps (the image runs'
 * and the recipe's step counts; the best at each alone was tau 0.2 / 0.03 and tau 0.1 / 0.01).
 */
export const METRIC_LOSS_DEFAULTS = { learningRate: 0.03, temperature: 0.1 } as const;

/**
 * The loss-only baselines a practitioner would run for a metric of the embeddings (recall-at-K,
 * a user module with `outputs: ['embedding']`): the FiLM phi fine-tuned with the supervised
 * contrastive loss on the L2-normalised embeddings (metric-learning-loss.ts), from ce_finetune's
 * start, on ce_finetune's own batches (same steps, batch size and optimiser: a paired comparison
 * of the two losses), with
 * - metric_learning_finetune: the last step, no query;
 * - metric_learning_finetune_dense_eval: the real validation metric at every step, best kept
 *   (T + 1 queries, as ce_finetune_dense_eval).
 * For a metric of the probabilities neither runs nor appears in the report (the run is the one
 * it was); a model without a differentiable embedding head skips them, saying why.
 */
export async function metricLearningRuns(
  cfg: Pick<MetaTestConfig, 'lossOptimizer' | 'metricLoss'>,
  deps: Pick<MetaTestDeps, 'model' | 'evaluator'>,
  queries: Pick<SeedQueries, 'score' | 'queryVal' | 'best'>,
  start: Float32Array,
  batches: Int32Array[],
  seed: number,
): Promise<Result<Pick<SeedResult, 'runs' | 'skipped'>, UseCaseError>> {
  const { model, evaluator } = deps;
  if (!readsEmbeddings(evaluator)) return ok({ runs: {}, skipped: {} });
  if (!model.embeddingLossAndGrad) {
    const why = 'the model has no differentiable embedding head (embeddingLossAndGrad)';
    return ok({ runs: {}, skipped: { metric_learning_finetune: why, metric_learning_finetune_dense_eval: why } });
  }
  const { learningRate, temperature } = cfg.metricLoss ?? METRIC_LOSS_DEFAULTS;
  const loss = supervisedContrastiveLoss(temperature);
  const opt = new BatchedOptimizer(cfg.lossOptimizer, learningRate, model.d);
  const phi = start.slice();
  const path: Float32Array[] = [start.slice()];
  for (const rows of batches) {
    const { grad } = model.embeddingLossAndGrad(phi, 1, rows, rows.length, loss);
    opt.step(phi, grad);
    path.push(phi.slice());
  }
  const runs: SeedResult['runs'] = {};
  runs.metric_learning_finetune = {
    test: await queries.score(path[path.length - 1] as Float32Array, 'test'),
    val: null,
    queries: 0,
  };
  const vals = await queries.queryVal(path, 1_500_000 + seed);
  const found = queries.best(vals);
  if (!found.ok) return found;
  runs.metric_learning_finetune_dense_eval = {
    test: await queries.score(path[found.value] as Float32Array, 'test'),
    val: denormalise(vals[found.value] as number, evaluator.direction),
    queries: path.length,
  };
  return ok({ runs, skipped: {} });
}
