import type { Sampler } from '../../data/sampler.js';
import { priorCorrectScores, searchThreshold, thresholdScores } from '../../method/decision-shift.js';
import { BatchedOptimizer } from '../../method/optimizers.js';
import { denormalise } from '../../metrics/evaluator.js';
import type { Curves } from '../../report/plot-svg.js';
import { Rng } from '../../util/random.js';
import { err, ok, type Result } from '../../util/result.js';
import { runBlackBoxPeers } from './black-box-peers.js';
import { decisionShiftPhi } from './decision-shift-phi.js';
import type { CmaEsError } from '../../method/cma-es.js';
import type { UseCaseError } from './errors.js';
import type { MetaTestConfig, MetaTestDeps, SeedResult } from './meta-test-config.js';
import { noObservation, seedQueries } from './meta-test-queries.js';
import { metricLearningRuns } from './metric-learning-baseline.js';
import { chooseEndpoint } from './metricopt-endpoint.js';
import { followValueFunction } from './metricopt-path.js';

/**
 * Meta-test (Stage 5) for one seed: every method of meta-test-config.ts's list, each judged on
 * the test rows; metricopt's path (metricopt-path.ts), its endpoint (metricopt-endpoint.ts) and
 * the black-box peers (black-box-peers.ts) live beside this file.
 */
export async function metaTestSeed(
  cfg: MetaTestConfig,
  deps: MetaTestDeps,
  seed: number,
  jobId: string,
): Promise<Result<SeedResult, UseCaseError | CmaEsError>> {
  const { model, evaluator } = deps;
  const d = model.d;
  const T = cfg.steps;
  const B = cfg.batchSize;
  const rng = new Rng(seed * 7919 + 17);
  const random = rng.normals(d, cfg.phi0Std);
  const direction = evaluator.direction;
  const queries = await seedQueries(cfg, deps, jobId);
  const { on, predict, scoreScores, score, queryScores, queryVal, best } = queries;
  let tag = 0;
  const valLoss = (phi: Float32Array): number => model.loss(phi, 1, deps.valRows, deps.valRows.length)[0] as number;
  const rows = new Int32Array(B);
  const runs: SeedResult['runs'] = {};
  const skipped: SeedResult['skipped'] = {};

  // ce: the pre-trained model.
  const zero = new Float32Array(d);
  runs.ce = { test: await score(zero, 'test'), val: null, queries: 0 };
  // The loss-only baselines start where the recipe says (the pre-trained point or a random phi).
  const start = cfg.start === 'random' ? random : zero;

  /** Loss-only fine-tuning from the start point; the path phi_0 .. phi_T and the batches it drew. */
  const lossOnly = (sampler: Sampler, batchRng: Rng) => {
    const path: Float32Array[] = [start.slice()];
    const batches: Int32Array[] = [];
    const opt = new BatchedOptimizer(cfg.lossOptimizer, cfg.lossLearningRate, d);
    const phi = start.slice();
    let time = 0;
    for (let t = 0; t < T; t++) {
      sampler.sampleInto(batchRng, rows);
      batches.push(rows.slice());
      const t0 = performance.now();
      const { grad } = model.lossAndGrad(phi, 1, rows, B);
      opt.step(phi, grad);
      time += performance.now() - t0;
      path.push(phi.slice());
    }
    return { path, batches, time };
  };
  const balanced = lossOnly(deps.sampler, rng.fork(1));
  const lossPath = balanced.path;
  runs.ce_finetune = { test: await score(lossPath[T] as Float32Array, 'test'), val: null, queries: 0 };
  const natural = lossOnly(deps.naturalSampler, rng.fork(5));
  runs.ce_finetune_natural = { test: await score(natural.path[T] as Float32Array, 'test'), val: null, queries: 0 };
  const denseVals = await queryVal(lossPath, 1_000_000 + seed);
  const denseFound = best(denseVals);
  if (!denseFound.ok) return denseFound;
  const denseBest = denseFound.value;
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
    const found = await searchThreshold(ceVal.scores, nRandom, async (t) => {
      const [v] = await queryScores([{ ...ceVal, scores: thresholdScores(ceVal.scores, t) }], tag++);
      return v ?? null;
    });
    if (!found.best) return err(noObservation());
    threshold = found.best.threshold;
    runs.threshold = {
      test: await scoreScores({ ...ceTest, scores: thresholdScores(ceTest.scores, found.best.threshold) }, 'test'),
      val: denormalise(found.best.value, direction),
      queries: found.queries,
    };
  } else {
    skipped.threshold =
      'a decision threshold is defined for binary tasks only (prior_correction shifts multi-class decisions)';
  }
  runs.prior_correction = {
    test: await scoreScores(
      { ...ceTest, scores: priorCorrectScores(ceTest.scores, model.classes, deps.trainPrior) },
      'test',
    ),
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
      const ceObs = queries.outputs(zero, deps.observeRows);
      tag = 4_500_000 + seed;
      const found = await searchThreshold(ceObs.scores, nRandom, async (t) => {
        const [v] = await queryScores([{ ...ceObs, scores: thresholdScores(ceObs.scores, t) }], tag++, 'observe');
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
  const { path: mPath, time: mTime } = followValueFunction(cfg, model, vf, mSampler, mStart, rows, esRng, mRng);
  const endpointFound = await chooseEndpoint(
    cfg,
    deps,
    queries,
    { path: mPath, q, anchors, start, shifted, decisionStart, startQueries },
    seed,
  );
  if (!endpointFound.ok) return endpointFound;
  const picked = endpointFound.value;
  const mQueries = picked.queries;
  runs.metricopt = {
    test: await score(picked.chosen, 'test'),
    val: picked.val,
    queries: mQueries,
    endpoint: picked.endpoint,
  };

  // Random search with the same number of real queries.
  const rsRng = rng.fork(4);
  const randoms = Array.from({ length: nRandom }, () => rsRng.normals(d, cfg.phi0Std));
  const rsVals = await queryVal(randoms, 3_000_000 + seed);
  const rsFound = best(rsVals);
  if (!rsFound.ok) return rsFound;
  const rsBest = rsFound.value;
  runs.random_search = {
    test: await score(randoms[rsBest] as Float32Array, 'test'),
    val: denormalise(rsVals[rsBest] as number, direction),
    queries: nRandom,
  };
  const peersFound = await runBlackBoxPeers(cfg, deps, queries, rng, mStart, mQueries, seed);
  if (!peersFound.ok) return peersFound;
  const peers = peersFound.value;
  Object.assign(runs, peers.runs);
  Object.assign(skipped, peers.skipped);
  // The metric-learning loss on ce_finetune's batches, for metrics of the embeddings only.
  const metricFound = await metricLearningRuns(cfg, deps, queries, start, balanced.batches, seed);
  if (!metricFound.ok) return metricFound;
  Object.assign(runs, metricFound.value.runs);
  Object.assign(skipped, metricFound.value.skipped);

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

  return ok({
    seed,
    runs,
    skipped,
    curves,
    lossOnlyStepMs: balanced.time / T,
    metricoptStepMs: mTime / T,
  });
}
