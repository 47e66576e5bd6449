import type { Sampler } from '../data/sampler.js';
import { priorCorrectScores, searchThreshold, thresholdScores } from '../method/decision-shift.js';
import { type GuidedEsOptions, guidedEsDirection } from '../method/guided-es.js';
import { BatchedOptimizer, type OptimizerKind, projectToBall } from '../method/optimizers.js';
import type { ValueFn } from '../method/value-function-f32.js';
import { evaluateWithRetries } from '../metrics/retry-policy.js';
import { denormalise, type Evaluator } from '../metrics/evaluator.js';
import type { AdaptedModel } from '../models/adapted-model.js';
import type { MetricOracle } from '../ports/metric-oracle.port.js';
import type { MethodName } from '../schemas/report.js';
import { Rng } from '../util/random.js';
import { UseCaseError } from './errors.js';

/**
 * Meta-test (Stage 5) and the baselines it is judged against, for one seed:
 * - ce: the pre-trained model, phi = 0;
 * - ce_finetune: loss-only fine-tuning of phi on class-balanced batches (the pre-training loss), last step;
 * - ce_finetune_natural: loss-only fine-tuning on natural-frequency batches, unweighted cross-entropy, last step;
 * - ce_finetune_dense_eval: the class-balanced run with the real validation metric at every step, best kept;
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
  /** 'zero' starts at the pre-trained point (tuned); 'random' at phi_0 ~ N(0, phi0Std^2) (paper). */
  start: 'zero' | 'random';
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
}

export interface MethodRun {
  /** Test metric, natural direction; null when the evaluator still failed after its retries. */
  test: number | null;
  /** Validation metric of the chosen phi, natural direction (when known). */
  val: number | null;
  /** Real metric queries spent. */
  queries: number;
  /** metricopt only: where the chosen endpoint came from. */
  endpoint?: 'path' | 'start' | 'best_observed';
}

export interface Curves {
  /** Validation metric (natural direction) at each step. */
  ceFinetuneMetric: number[];
  metricoptMetric: number[];
  /** Mean cross-entropy on the validation split at each step. */
  ceFinetuneLoss: number[];
  metricoptLoss: number[];
  /** Value-function prediction (natural direction) along the metricopt path. */
  metricoptPredicted: number[];
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
  testLabels: Int32Array;
  valLabels: Int32Array;
  /** Real validation queries (counted). */
  oracle: MetricOracle;
  /** The same metric in-process, for the final test score and uncounted diagnostics. */
  evaluator: Evaluator;
  valueFunction: ValueFn;
}

export async function metaTestSeed(
  cfg: MetaTestConfig,
  deps: MetaTestDeps,
  seed: number,
  jobId: string,
): Promise<SeedResult> {
  const { model, evaluator } = deps;
  const d = model.d;
  const T = cfg.steps;
  const B = cfg.batchSize;
  const rng = new Rng(seed * 7919 + 17);
  const start = cfg.start === 'zero' ? new Float32Array(d) : rng.normals(d, cfg.phi0Std);
  const direction = evaluator.direction;
  await deps.oracle.registerSplit('val', { labels: deps.valLabels, classes: model.classes });

  /** The metric in-process, with the evaluator retry policy; null (a missing value) if it still fails. */
  const scoreScores = async (scores: Float32Array, split: 'val' | 'test'): Promise<number | null> => {
    const res = await evaluateWithRetries(evaluator, {
      scores,
      labels: split === 'val' ? deps.valLabels : deps.testLabels,
      classes: model.classes,
    });
    return res.ok ? res.value.value : null;
  };
  const predict = (phi: Float32Array, split: 'val' | 'test') =>
    model.predict(phi, 1, split === 'val' ? deps.valRows : deps.testRows);
  const score = (phi: Float32Array, split: 'val' | 'test') => scoreScores(predict(phi, split), split);
  let tag = 0;
  /** Real validation queries through the oracle; failed ones count as spent and are never chosen. */
  const queryScores = async (scoreSets: Float32Array[], taskId: number): Promise<(number | null)[]> => {
    const results = await deps.oracle.evaluate(
      scoreSets.map((scores, i) => ({ jobId, taskId, step: i, split: 'val', scores })),
    );
    return results.map((r) => (r.ok ? r.value.normalised : null));
  };
  const queryVal = (phis: Float32Array[], taskId: number): Promise<(number | null)[]> => {
    const all = new Float32Array(phis.length * d);
    phis.forEach((p, i) => all.set(p, i * d));
    const scores = model.predict(all, phis.length, deps.valRows);
    const per = scores.length / phis.length;
    return queryScores(
      phis.map((_, i) => scores.slice(i * per, (i + 1) * per)),
      taskId,
    );
  };
  const best = (values: (number | null)[]): number => {
    let bi = -1;
    values.forEach((v, i) => {
      if (v !== null && (bi < 0 || v < (values[bi] as number))) bi = i;
    });
    if (bi < 0) throw new UseCaseError('META_TEST_NO_OBSERVATION', 'meta-test: every validation query failed');
    return bi;
  };
  const valLoss = (phi: Float32Array): number => model.loss(phi, 1, deps.valRows, deps.valRows.length)[0] as number;
  const rows = new Int32Array(B);
  const runs: SeedResult['runs'] = {};
  const skipped: SeedResult['skipped'] = {};

  // ce: the pre-trained model.
  const zero = new Float32Array(d);
  runs.ce = { test: await score(zero, 'test'), val: null, queries: 0 };

  /** Loss-only fine-tuning from the start point; the path phi_0 .. phi_T. */
  const lossOnly = (sampler: Sampler, batchRng: Rng) => {
    const path: Float32Array[] = [start.slice()];
    const opt = new BatchedOptimizer(cfg.lossOptimizer, cfg.lossLearningRate, d);
    const phi = start.slice();
    let time = 0;
    for (let t = 0; t < T; t++) {
      sampler.sampleInto(batchRng, rows);
      const t0 = performance.now();
      const { grad } = model.lossAndGrad(phi, 1, rows, B);
      opt.step(phi, grad);
      time += performance.now() - t0;
      path.push(phi.slice());
    }
    return { path, time };
  };
  const balanced = lossOnly(deps.sampler, rng.fork(1));
  const lossPath = balanced.path;
  runs.ce_finetune = { test: await score(lossPath[T] as Float32Array, 'test'), val: null, queries: 0 };
  const natural = lossOnly(deps.naturalSampler, rng.fork(5));
  runs.ce_finetune_natural = { test: await score(natural.path[T] as Float32Array, 'test'), val: null, queries: 0 };
  const denseVals = await queryVal(lossPath, 1_000_000 + seed);
  const denseBest = best(denseVals);
  runs.ce_finetune_dense_eval = {
    test: await score(lossPath[denseBest] as Float32Array, 'test'),
    val: denormalise(denseVals[denseBest] as number, direction),
    queries: lossPath.length,
  };

  // MetricOpt: follow the value function (and the loss, Eq. 1) from the start point.
  const esRng = rng.fork(2);
  const mRng = rng.fork(3);
  const mSampler = cfg.lossSampler === 'natural' ? deps.naturalSampler : deps.sampler;
  const vf = deps.valueFunction;
  const mPath: Float32Array[] = [start.slice()];
  const mOpt = new BatchedOptimizer(cfg.vfOptimizer, cfg.vfLearningRate, d);
  const phi = start.slice();
  const grads: Float32Array[] = [];
  const g = new Float32Array(d);
  let mTime = 0;
  for (let t = 0; t < T; t++) {
    mSampler.sampleInto(mRng, rows);
    const t0 = performance.now();
    if (cfg.method === 'guided-es') {
      const { grad } = model.lossAndGrad(phi, 1, rows, B);
      grads.push(grad.slice());
      if (grads.length > cfg.es.k) grads.shift();
      const scoreFn =
        cfg.es.lambda > 0
          ? (p: Float32Array) => cfg.es.lambda * vf.value(p) + (model.loss(p, 1, rows, B)[0] as number)
          : (p: Float32Array) => vf.value(p);
      const u = guidedEsDirection(scoreFn, phi, grads, cfg.es, esRng);
      mOpt.step(phi, u);
    } else {
      vf.valueAndGradient(phi, g);
      if (cfg.lossWeight > 0) {
        const { grad } = model.lossAndGrad(phi, 1, rows, B);
        for (let j = 0; j < d; j++) g[j] = (g[j] as number) + cfg.lossWeight * (grad[j] as number);
      }
      mOpt.step(phi, g);
    }
    projectToBall(phi, start, cfg.trustRadius);
    mTime += performance.now() - t0;
    mPath.push(phi.slice());
  }
  let chosen = mPath[T] as Float32Array;
  let chosenVal: number | null = null;
  let mQueries = 0;
  let endpoint: MethodRun['endpoint'] = 'path';
  if (cfg.endpointQueries > 0 || cfg.anchorEndpoints) {
    const q = Math.min(cfg.endpointQueries, T);
    const candidates = Array.from({ length: q }, (_, i) => mPath[Math.round((T * (i + 1)) / q)] as Float32Array);
    if (cfg.anchorEndpoints) {
      candidates.push(start);
      if (deps.bestObserved) candidates.push(deps.bestObserved.phi);
    }
    // Every candidate is scored by a fresh query, on the selection rows: the best observation's
    // own value was the minimum of many noisy ones and would win by that alone.
    const vals = await queryVal(candidates, 2_000_000 + seed);
    mQueries = candidates.length;
    const bi = best(vals);
    chosen = candidates[bi] as Float32Array;
    chosenVal = denormalise(vals[bi] as number, direction);
    endpoint = bi < q ? 'path' : bi === q ? 'start' : 'best_observed';
  }
  runs.metricopt = { test: await score(chosen, 'test'), val: chosenVal, queries: mQueries, endpoint };

  // Random search with the same number of real queries.
  const nRandom = Math.max(cfg.minRandomSearch, mQueries);
  const rsRng = rng.fork(4);
  const randoms = Array.from({ length: nRandom }, () => rsRng.normals(d, cfg.phi0Std));
  const rsVals = await queryVal(randoms, 3_000_000 + seed);
  const rsBest = best(rsVals);
  runs.random_search = {
    test: await score(randoms[rsBest] as Float32Array, 'test'),
    val: denormalise(rsVals[rsBest] as number, direction),
    queries: nRandom,
  };

  // Decision shifts of the pre-trained model.
  const ceVal = predict(zero, 'val');
  const ceTest = predict(zero, 'test');
  if (model.classes === 2) {
    tag = 4_000_000 + seed;
    const found = await searchThreshold(ceVal, nRandom, async (t) => {
      const [v] = await queryScores([thresholdScores(ceVal, t)], tag++);
      return v ?? null;
    });
    if (!found.best) throw new UseCaseError('META_TEST_NO_OBSERVATION', 'meta-test: every validation query failed');
    runs.threshold = {
      test: await scoreScores(thresholdScores(ceTest, found.best.threshold), 'test'),
      val: denormalise(found.best.value, direction),
      queries: found.queries,
    };
  } else {
    skipped.threshold =
      'a decision threshold is defined for binary tasks only (prior_correction shifts multi-class decisions)';
  }
  runs.prior_correction = {
    test: await scoreScores(priorCorrectScores(ceTest, model.classes, deps.trainPrior), 'test'),
    val: null,
    queries: 0,
  };
  if (deps.bestObserved) {
    runs.best_observed = {
      test: await score(deps.bestObserved.phi, 'test'),
      val: denormalise(deps.bestObserved.value, direction),
      queries: 0,
    };
  } else {
    skipped.best_observed = 'meta-training observed no phi';
  }

  // Diagnostics for the plot (in-process, not counted as queries).
  const curves: Curves = {
    ceFinetuneMetric: denseVals.map((v) => (v === null ? Number.NaN : denormalise(v, direction))),
    metricoptMetric: [],
    ceFinetuneLoss: lossPath.map(valLoss),
    metricoptLoss: mPath.map(valLoss),
    metricoptPredicted: mPath.map((p) => denormalise(vf.value(p), direction)),
  };
  for (const p of mPath) curves.metricoptMetric.push((await score(p, 'val')) ?? Number.NaN);

  return {
    seed,
    runs,
    skipped,
    curves,
    lossOnlyStepMs: balanced.time / T,
    metricoptStepMs: mTime / T,
  };
}
