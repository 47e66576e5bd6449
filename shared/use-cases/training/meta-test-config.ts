import type { Sampler } from '../../data/sampler.js';
import type { CmaEsError } from '../../method/cma-es.js';
import type { GuidedEsOptions } from '../../method/guided-es.js';
import type { OptimizerKind } from '../../method/optimizers.js';
import type { ValueFn } from '../../method/value-function-f32.js';
import type { ContextColumns } from '../../metrics/context-columns.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import type { Curves } from '../../report/plot-svg.js';
import type { MethodName } from '../../schemas/report.js';
import type { Result } from '../../util/result.js';

/**
 * Meta-test (Stage 5) and the baselines it is judged against, for one seed:
 * - ce: the pre-trained model, phi = 0;
 * - ce_finetune: loss-only fine-tuning of phi on class-balanced batches (the pre-training loss), last step;
 * - ce_finetune_natural: loss-only fine-tuning on natural-frequency batches, unweighted cross-entropy, last step;
 * - ce_finetune_dense_eval: the class-balanced run with the real validation metric at every step, best kept;
 * - metric_learning_finetune (+ _dense_eval), metrics of the embeddings only: the same, with the
 *   supervised contrastive loss on the embeddings (metric-learning-baseline.ts);
 * - random_search: random phi, as many real validation queries as metricopt spends, best kept;
 * - threshold (binary): the pre-trained model's decision threshold searched on validation with
 *   as many real queries as metricopt spends;
 * - prior_correction: the pre-trained scores re-weighted to the natural class prior, no query;
 * - best_observed: the best phi among meta-training's observations (already paid for);
 * - metricopt: value-function-guided fine-tuning (Guided ES or value-function descent, with
 *   the loss of Eq. 1), endpoint chosen with real validation queries.
 */
export interface MetaTestConfig {
  steps: number;
  batchSize: number;
  /** Optimiser and step size of the loss-only baseline (and of the loss gradients ES uses). */
  lossOptimizer: OptimizerKind;
  lossLearningRate: number;
  /**
   * 'zero' starts at the pre-trained point; 'random' at phi_0 ~ N(0, phi0Std^2) (paper);
   * 'decision-shift' at the pre-trained point with the decision shift of the threshold baseline
   * (binary; the prior correction for multi-class) written into phi's output biases, so the
   * cheap win is where metricopt begins (models without output biases start at zero).
   */
  start: 'zero' | 'random' | 'decision-shift';
  phi0Std: number;
  /** How metricopt moves phi: Guided ES (Eq. 3-4) or exact value-function gradient descent. */
  method: 'guided-es' | 'vf-descent';
  es: GuidedEsOptions & { k: number; lambda: number };
  /** Optimiser and step size applied to the ES direction / value-function gradient. */
  vfOptimizer: OptimizerKind;
  vfLearningRate: number;
  /** Trust region: ||phi - phi_start|| <= radius (Infinity = none). */
  trustRadius: number;
  /** Real validation queries to pick the endpoint along the metricopt path (0 = take the last step). */
  endpointQueries: number;
  /**
   * Weight of the loss gradient added to the value-function gradient in vf-descent (Eq. 1:
   * f + lossWeight * l; 0 = the value function alone). Guided ES has es.lambda instead.
   */
  lossWeight: number;
  /** Mini-batches of metricopt's loss term: class-balanced (pre-training's) or natural frequency. */
  lossSampler: 'balanced' | 'natural';
  /**
   * Also offer the start point and the best meta-training observation as endpoints (one more
   * real query each), so on the selection rows metricopt is never worse than either.
   */
  anchorEndpoints: boolean;
  /** Random-search candidates when metricopt spends no query (default 1). */
  minRandomSearch: number;
  /**
   * How the endpoint is chosen among the candidates: 'best' on the selection rows, or
   * 'confirm': the best on the even selection rows replaces the start only if it also beats the
   * start on the odd ones (a held-back confirmation slice: a single look at 7 candidates on a
   * few thousand rows rewards noise).
   */
  endpointRule?: 'best' | 'confirm';
  /**
   * Run the black-box peers at metricopt's TOTAL budget (random_search_total, cma_es): as many
   * real queries as meta-training spent, per seed, so off unless asked (`npm start` stays short).
   */
  blackBoxPeers?: boolean;
  /**
   * Real queries metricopt spends after its path, on the selection rows, in a value-function
   * guided search (shared/method/surrogate-search.ts: the value function as the prior mean of a
   * GP fitted to the real observations, a trust region around the best one). Its initial design
   * is the endpoint candidates; the endpoint is the best real observation. The black-box peers'
   * total budget grows by the same count. 0 or absent: off.
   */
  onlineQueries?: number;
  /**
   * The prior mean of that search: the value function (metricopt), or 'none' (a flat prior: the
   * same search with the GP alone, the ablation that says what the value function adds).
   */
  onlinePrior?: 'value-function' | 'none';
  /**
   * Of those queries, how many re-score the best distinct points of the search on the
   * observation rows (the half meta-training observed; binary runs with observation rows
   * only); the endpoint is then the best mean of the two halves: the best of ~1,000 looks at
   * the selection rows alone wins by its own noise (default 0 = the best selection value).
   */
  onlineRecheck?: number;
  /**
   * The metric-learning baselines (metric_learning_finetune, its dense-eval; metrics of the
   * embeddings only): Adam-or-SGD step size (the loss optimiser's kind) and the supervised
   * contrastive loss's temperature. Absent: METRIC_LOSS_DEFAULTS (metric-learning-baseline.ts).
   */
  metricLoss?: { learningRate: number; temperature: number };
}

export interface MethodRun {
  /** Test metric, natural direction; null when the evaluator still failed after its retries. */
  test: number | null;
  /** Validation metric of the chosen phi, natural direction (when known). */
  val: number | null;
  /** Real metric queries spent. */
  queries: number;
  /** metricopt only: where the chosen endpoint came from. */
  endpoint?: 'path' | 'start' | 'decision_shift' | 'best_observed' | 'online';
}

/** The methods meta-test runs: the report's method names (`shared/schemas/report.ts`). */
export type MetaTestMethod = MethodName;

export interface SeedResult {
  seed: number;
  /** A method missing here was skipped (see `skipped`). */
  runs: Partial<Record<MetaTestMethod, MethodRun>>;
  skipped: Partial<Record<MetaTestMethod, string>>;
  curves: Curves;
  lossOnlyStepMs: number;
  metricoptStepMs: number;
}

export interface MetaTestDeps {
  model: AdaptedModel;
  /** Class-balanced batches (the pre-training protocol). */
  sampler: Sampler;
  /** Natural-frequency batches. */
  naturalSampler: Sampler;
  /** Class shares in the training split. */
  trainPrior: ArrayLike<number>;
  /** The best phi meta-training observed and its normalised validation value, if any. */
  bestObserved: { phi: Float32Array; value: number } | null;
  valRows: Int32Array;
  testRows: Int32Array;
  /**
   * The rows meta-training observed the metric on (the other validation half) and their labels:
   * the decision-shifted start's threshold is searched there, so that on the selection rows it
   * competes with the other endpoint candidates without the selection bias of its own search.
   */
  observeRows?: Int32Array;
  observeLabels?: Int32Array;
  testLabels: Int32Array;
  valLabels: Int32Array;
  /** Real validation queries (counted). */
  oracle: MetricOracle;
  /** The same metric in-process, for the final test score and uncounted diagnostics. */
  evaluator: Evaluator;
  valueFunction: ValueFn;
  /** The data set's per-row context columns (indexed by dataset row), sliced for the evaluator. */
  context?: ContextColumns;
  /** A black-box minimiser over phi (CMA-ES) for the cma_es peer; absent, cma_es is skipped. */
  blackBox?: BlackBoxMinimiser;
  /**
   * Real queries meta-training spent for metricopt: random_search_total and cma_es get this plus
   * metricopt's meta-test queries (its TOTAL budget); absent, both are skipped.
   */
  metaTrainQueries?: number;
}

/** Minimises f over phi from x0 with at most `budget` evaluations of f (batched); null when every evaluation failed. */
export type BlackBoxMinimiser = (
  f: (xs: Float32Array[]) => Promise<(number | null)[]>,
  x0: Float32Array,
  sigma0: number,
  budget: number,
  seed: number,
) => Promise<Result<{ best: Float32Array; value: number } | null, CmaEsError>>;

/** Initial CMA-ES step size in phi units (phi's trajectories start at N(0, 1)). */
export const CMA_SIGMA0 = 0.5;
