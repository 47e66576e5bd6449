import type { Sampler } from '../../data/sampler.js';
import { priorCorrectScores, searchThreshold, thresholdScores } from '../../method/decision-shift.js';
import { type GuidedEsOptions, guidedEsDirection } from '../../method/guided-es.js';
import { BatchedOptimizer, type OptimizerKind, projectToBall } from '../../method/optimizers.js';
import { surrogateSearch } from '../../method/surrogate-search.js';
import type { ValueFn } from '../../method/value-function-f32.js';
import { evaluateWithRetries } from '../../metrics/retry-policy.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import { denormalise } from '../../metrics/evaluator.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import type { MethodName } from '../../schemas/report.js';
import { Rng } from '../../util/random.js';
import { evaluationInput, type ContextColumns, type ScoredRows, sliceContext } from '../../metrics/context-columns.js';
import { UseCaseError } from './errors.js';
import type { Curves } from '../../report/plot-svg.js';

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

/** Minimises f over phi from x0 with at most `budget` evaluations of f (batched). */
export type BlackBoxMinimiser = (
  f: (xs: Float32Array[]) => Promise<(number | null)[]>,
  x0: Float32Array,
  sigma0: number,
  budget: number,
  seed: number,
) => Promise<{ best: Float32Array; value: number } | null>;

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
  const random = rng.normals(d, cfg.phi0Std);
  const direction = evaluator.direction;
  const on = (rows: Int32Array, labels: Int32Array): ScoredRows => ({
    labels,
    classes: model.classes,
    rows,
    ...(deps.context ? { context: sliceContext(deps.context, rows) } : {}),
  });
  const valOn = on(deps.valRows, deps.valLabels);
  const testOn = on(deps.testRows, deps.testLabels);
  await deps.oracle.registerSplit('val', valOn);
  const halves = [0, 1].map((h) => {
    const idx = Int32Array.from({ length: deps.valRows.length }, (_, i) => i).filter((i) => i % 2 === h);
    return {
      idx,
      on: on(
        Int32Array.from(idx, (i) => deps.valRows[i] as number),
        Int32Array.from(idx, (i) => deps.valLabels[i] as number),
      ),
    };
  });
  if (cfg.endpointRule === 'confirm') {
    await deps.oracle.registerSplit('val-even', (halves[0] as (typeof halves)[number]).on);
    await deps.oracle.registerSplit('val-odd', (halves[1] as (typeof halves)[number]).on);
  }

  /** The metric in-process, with the evaluator retry policy; null (a missing value) if it still fails. */
  const scoreScores = async (scores: Float32Array, split: 'val' | 'test'): Promise<number | null> => {
    const res = await evaluateWithRetries(evaluator, evaluationInput(scores, split === 'val' ? valOn : testOn));
    return res.ok ? res.value.value : null;
  };
  const predict = (phi: Float32Array, split: 'val' | 'test') =>
    model.predict(phi, 1, split === 'val' ? deps.valRows : deps.testRows);
  const score = (phi: Float32Array, split: 'val' | 'test') => scoreScores(predict(phi, split), split);
  let tag = 0;
  /** Real validation queries through the oracle; failed ones count as spent and are never chosen. */
  const queryScores = async (
    scoreSets: Float32Array[],
    taskId: number,
    split: 'val' | 'val-even' | 'val-odd' | 'observe' = 'val',
  ): Promise<(number | null)[]> => {
    const results = await deps.oracle.evaluate(
      scoreSets.map((scores, i) => ({ jobId, taskId, step: i, split, scores })),
    );
    return results.map((r) => (r.ok ? r.value.normalised : null));
  };
  const queryVal = async (
    phis: Float32Array[],
    taskId: number,
    split: 'val' | 'val-even' | 'val-odd' = 'val',
  ): Promise<(number | null)[]> => {
    const rowsOf =
      split === 'val' ? deps.valRows : ((split === 'val-even' ? halves[0] : halves[1])?.on.rows as Int32Array);
    const out: (number | null)[] = [];
    // Chunks keep the predictions of a large budget (random_search_total, cma_es) small in memory.
    for (let s = 0; s < phis.length; s += 64) {
      const part = phis.slice(s, s + 64);
      const all = new Float32Array(part.length * d);
      part.forEach((p, i) => all.set(p, i * d));
      const scores = model.predict(all, part.length, rowsOf);
      const per = scores.length / part.length;
      out.push(
        ...(await queryScores(
          part.map((_, i) => scores.slice(i * per, (i + 1) * per)),
          taskId + s,
          split,
        )),
      );
    }
    return out;
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
  // The loss-only baselines start where the recipe says (the pre-trained point or a random phi).
  const start = cfg.start === 'random' ? random : zero;

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

  // The endpoint candidates metricopt will query, known up front: the threshold baseline gets
  // as many queries.
  const q = cfg.endpointQueries > 0 || cfg.anchorEndpoints ? Math.min(cfg.endpointQueries, T) : 0;
  const decisionStart = cfg.start === 'decision-shift';
  const anchors = cfg.anchorEndpoints ? 1 + (deps.bestObserved ? 1 : 0) + (decisionStart ? 1 : 0) : 0;
  const plannedQueries = q + anchors + (cfg.endpointRule === 'confirm' && q + anchors > 0 ? 2 : 0);
  const nRandom = Math.max(cfg.minRandomSearch, plannedQueries);

  // Decision shifts of the pre-trained model.
  const ceVal = predict(zero, 'val');
  const ceTest = predict(zero, 'test');
  let threshold: number | null = null;
  if (model.classes === 2) {
    tag = 4_000_000 + seed;
    const found = await searchThreshold(ceVal, nRandom, async (t) => {
      const [v] = await queryScores([thresholdScores(ceVal, t)], tag++);
      return v ?? null;
    });
    if (!found.best) throw new UseCaseError('META_TEST_NO_OBSERVATION', 'meta-test: every validation query failed');
    threshold = found.best.threshold;
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
  // The decision-shifted point in phi: the threshold (binary) or the prior correction written
  // into the output biases; the pre-trained point when the adapter has none.
  let shiftThreshold = threshold;
  let startQueries = 0;
  if (decisionStart && model.classes === 2) {
    startQueries = runs.threshold?.queries ?? 0;
    if (deps.observeRows && deps.observeLabels) {
      // Searched on the observation rows, with as many queries as the threshold baseline.
      await deps.oracle.registerSplit('observe', on(deps.observeRows, deps.observeLabels));
      const ceObs = model.predict(zero, 1, deps.observeRows);
      tag = 4_500_000 + seed;
      const found = await searchThreshold(ceObs, nRandom, async (t) => {
        const [v] = await queryScores([thresholdScores(ceObs, t)], tag++, 'observe');
        return v ?? null;
      });
      shiftThreshold = found.best?.threshold ?? threshold;
      startQueries = found.queries;
    }
  }
  const shifted = decisionShiftPhi(model, shiftThreshold, deps.trainPrior);
  const mStart = decisionStart ? shifted : start;

  // MetricOpt: follow the value function (and the loss, Eq. 1) from the start point.
  const esRng = rng.fork(2);
  const mRng = rng.fork(3);
  const mSampler = cfg.lossSampler === 'natural' ? deps.naturalSampler : deps.sampler;
  const vf = deps.valueFunction;
  const mPath: Float32Array[] = [mStart.slice()];
  const mOpt = new BatchedOptimizer(cfg.vfOptimizer, cfg.vfLearningRate, d);
  const phi = mStart.slice();
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
    projectToBall(phi, mStart, cfg.trustRadius);
    mTime += performance.now() - t0;
    mPath.push(phi.slice());
  }
  /** The value-function-guided search with real queries (cfg.onlineQueries), from `initial`. */
  const runOnlineSearch = async (initial: Float32Array[]) => {
    let spent = 0;
    const recheck =
      deps.observeRows && deps.observeLabels ? Math.min(cfg.onlineRecheck ?? 0, cfg.onlineQueries ?? 0) : 0;
    const found = await surrogateSearch(
      async (xs) => {
        const vals = await queryVal(xs, 7_000_000 + seed * 10_000 + spent);
        spent += xs.length;
        return vals;
      },
      cfg.onlinePrior === 'none' ? () => 0 : (p) => vf.value(p),
      initial,
      {
        budget: initial.length + (cfg.onlineQueries ?? 0) - recheck,
        sigma0: CMA_SIGMA0,
        candidatesPerSlot: 256,
        seed: seed * 31 + 7,
      },
    );
    mQueries += spent;
    if (!found) throw new UseCaseError('META_TEST_NO_OBSERVATION', 'meta-test: every validation query failed');
    const m = recheck;
    if (m <= 0 || !deps.observeRows || !deps.observeLabels) return found;
    // The m best distinct points on the selection rows, scored again on the observation rows.
    const top = [...found.observed].sort((a, b) => a.value - b.value).slice(0, m);
    await deps.oracle.registerSplit('observe', on(deps.observeRows, deps.observeLabels));
    const all = new Float32Array(top.length * d);
    top.forEach((o, i) => all.set(o.x, i * d));
    const scores = model.predict(all, top.length, deps.observeRows);
    const per = scores.length / top.length;
    const again = await queryScores(
      top.map((_, i) => scores.slice(i * per, (i + 1) * per)),
      7_900_000 + seed * 1_000,
      'observe',
    );
    mQueries += top.length;
    let pick = 0;
    let pickMean = Number.POSITIVE_INFINITY;
    top.forEach((o, i) => {
      const v = again[i];
      const both = v === null || v === undefined ? Number.POSITIVE_INFINITY : (o.value + v) / 2;
      if (both < pickMean) {
        pickMean = both;
        pick = i;
      }
    });
    const chosenTop = top[pick] as (typeof top)[number];
    return { ...found, best: chosenTop.x, value: chosenTop.value, fromInitial: chosenTop.fromInitial };
  };
  let chosen = mPath[T] as Float32Array;
  let chosenVal: number | null = null;
  let mQueries = startQueries;
  let endpoint: MethodRun['endpoint'] = 'path';
  if (q + anchors > 0) {
    const candidates = Array.from({ length: q }, (_, i) => mPath[Math.round((T * (i + 1)) / q)] as Float32Array);
    const kinds: NonNullable<MethodRun['endpoint']>[] = candidates.map(() => 'path');
    if (cfg.anchorEndpoints) {
      candidates.push(start);
      kinds.push('start');
      if (decisionStart) {
        candidates.push(shifted);
        kinds.push('decision_shift');
      }
      if (deps.bestObserved) {
        candidates.push(deps.bestObserved.phi);
        kinds.push('best_observed');
      }
    }
    // Every candidate is scored by a fresh query, on the selection rows: the best observation's
    // own value was the minimum of many noisy ones and would win by that alone.
    if ((cfg.onlineQueries ?? 0) > 0) {
      const found = await runOnlineSearch(candidates);
      chosen = found.best;
      chosenVal = denormalise(found.value, direction);
      endpoint = found.fromInitial >= 0 ? (kinds[found.fromInitial] ?? 'path') : 'online';
    } else if (cfg.endpointRule === 'confirm') {
      // The default is the start point; a challenger must win on the even rows and confirm on the odd ones.
      const home = decisionStart ? candidates.length - (deps.bestObserved ? 2 : 1) : q;
      const even = await queryVal(candidates, 2_000_000 + seed, 'val-even');
      const bi = best(even);
      let pick = Math.min(home, candidates.length - 1);
      const [vc, vh] =
        bi === pick
          ? [0, 1]
          : await queryVal(
              [candidates[bi] as Float32Array, candidates[pick] as Float32Array],
              2_500_000 + seed,
              'val-odd',
            );
      mQueries += candidates.length + (bi === pick ? 0 : 2);
      if (bi !== pick && vc !== null && vc !== undefined && vh !== null && vh !== undefined && vc < vh) pick = bi;
      chosen = candidates[pick] as Float32Array;
      endpoint = kinds[pick] ?? 'path';
    } else {
      const vals = await queryVal(candidates, 2_000_000 + seed);
      mQueries += candidates.length;
      const bi = best(vals);
      chosen = candidates[bi] as Float32Array;
      chosenVal = denormalise(vals[bi] as number, direction);
      endpoint = kinds[bi] ?? 'path';
    }
  }
  if (q + anchors === 0 && (cfg.onlineQueries ?? 0) > 0) {
    const found = await runOnlineSearch([chosen]);
    chosen = found.best;
    chosenVal = denormalise(found.value, direction);
    endpoint = found.fromInitial >= 0 ? 'path' : 'online';
  }
  runs.metricopt = { test: await score(chosen, 'test'), val: chosenVal, queries: mQueries, endpoint };

  // Random search with the same number of real queries.
  const rsRng = rng.fork(4);
  const randoms = Array.from({ length: nRandom }, () => rsRng.normals(d, cfg.phi0Std));
  const rsVals = await queryVal(randoms, 3_000_000 + seed);
  const rsBest = best(rsVals);
  runs.random_search = {
    test: await score(randoms[rsBest] as Float32Array, 'test'),
    val: denormalise(rsVals[rsBest] as number, direction),
    queries: nRandom,
  };
  // The black-box peers at metricopt's TOTAL budget (meta-training's queries included), on the
  // selection rows: random search around the pre-trained point, and CMA-ES from metricopt's start.
  const total = deps.metaTrainQueries === undefined ? 0 : deps.metaTrainQueries + mQueries;
  if (!cfg.blackBoxPeers) {
    skipped.random_search_total = 'off (--black-box-peers true runs it at the total budget)';
    skipped.cma_es = 'off (--black-box-peers true runs it at the total budget)';
  } else if (total > 0) {
    const tRng = rng.fork(6);
    let bestPhi: Float32Array = zero;
    let bestV = Number.POSITIVE_INFINITY;
    for (let s = 0; s < total; s += 256) {
      const batch = Array.from({ length: Math.min(256, total - s) }, () => tRng.normals(d, cfg.phi0Std));
      const vals = await queryVal(batch, 5_000_000 + seed * 10_000 + s);
      vals.forEach((v, i) => {
        if (v !== null && v < bestV) {
          bestV = v;
          bestPhi = batch[i] as Float32Array;
        }
      });
    }
    runs.random_search_total = {
      test: await score(bestPhi, 'test'),
      val: Number.isFinite(bestV) ? denormalise(bestV, direction) : null,
      queries: total,
    };
    if (deps.blackBox) {
      let spent = 0;
      const found = await deps.blackBox(
        async (xs) => {
          const vals = await queryVal(xs, 6_000_000 + seed * 10_000 + spent);
          spent += xs.length;
          return vals;
        },
        mStart,
        CMA_SIGMA0,
        total,
        seed,
      );
      runs.cma_es = found
        ? { test: await score(found.best, 'test'), val: denormalise(found.value, direction), queries: spent }
        : { test: null, val: null, queries: spent };
    } else {
      skipped.cma_es = 'no black-box minimiser was given';
    }
  } else {
    skipped.random_search_total = 'no total budget was given (meta-training queries unknown)';
    skipped.cma_es = 'no total budget was given (meta-training queries unknown)';
  }

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

/** Initial CMA-ES step size in phi units (phi's trajectories start at N(0, 1)). */
export const CMA_SIGMA0 = 0.5;

/**
 * The decision-shifted point in phi: the threshold t (binary) written into the output bias so
 * that phi's decision at 0.5 is the pre-trained model's at t, or (multi-class, or no threshold)
 * the prior correction log(prior_c) + const per class; zero when the adapter has no output bias.
 */
export function decisionShiftPhi(
  model: Pick<AdaptedModel, 'd' | 'classes' | 'logitShift'>,
  threshold: number | null,
  prior: ArrayLike<number>,
): Float32Array {
  const phi = new Float32Array(model.d);
  const out = model.logitShift;
  if (!out) return phi;
  if (model.classes === 2) {
    const pi = prior[1] as number;
    const shift = threshold !== null ? -Math.log(threshold / (1 - threshold)) : Math.log(pi / (1 - pi));
    phi[out.index] = shift / out.scale;
    return phi;
  }
  for (let c = 0; c < out.count; c++) phi[out.index + c] = Math.log(Math.max(1e-12, prior[c] as number)) / out.scale;
  return phi;
}
