import type { BalancedSampler } from '../data/sampler.js';
import { type GuidedEsOptions, guidedEsDirection } from '../method/guided-es.js';
import { BatchedOptimizer, type OptimizerKind, projectToBall } from '../method/optimizers.js';
import type { ValueFn } from '../method/value-function-f32.js';
import { evaluateChecked } from '../metrics/checked-evaluator.js';
import { denormalise, type Evaluator } from '../metrics/evaluator.js';
import type { AdaptedModel } from '../models/adapted-model.js';
import type { MetricOracle } from '../ports/metric-oracle.port.js';
import { DomainError } from '../util/result.js';
import { Rng } from '../util/random.js';

/**
 * Meta-test (Stage 5) and the baselines it is judged against, for one seed:
 * - ce: the pre-trained model, phi = 0;
 * - ce_finetune: loss-only fine-tuning of phi, last step;
 * - ce_finetune_dense_eval: the same run with the real validation metric at every step, best kept;
 * - random_search: random phi, as many real validation queries as metricopt spends, best kept;
 * - metricopt: value-function-guided fine-tuning (Guided ES or value-function descent).
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
  /** Random-search candidates when metricopt spends no query (default 1). */
  minRandomSearch: number;
}

export interface MethodRun {
  /** Test metric, natural direction. */
  test: number;
  /** Validation metric of the chosen phi, natural direction (when known). */
  val: number | null;
  /** Real metric queries spent. */
  queries: number;
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

export interface SeedResult {
  seed: number;
  runs: Record<'ce' | 'ce_finetune' | 'ce_finetune_dense_eval' | 'random_search' | 'metricopt', MethodRun>;
  curves: Curves;
  lossOnlyStepMs: number;
  metricoptStepMs: number;
}

export interface MetaTestDeps {
  model: AdaptedModel;
  sampler: BalancedSampler;
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

  const score = async (phi: Float32Array, split: 'val' | 'test'): Promise<number> => {
    const rows = split === 'val' ? deps.valRows : deps.testRows;
    const labels = split === 'val' ? deps.valLabels : deps.testLabels;
    const res = await evaluateChecked(evaluator, {
      scores: model.predict(phi, 1, rows),
      labels,
      classes: model.classes,
    });
    if (!res.ok) throw res.error;
    return res.value.value;
  };
  /** Real validation queries through the oracle; failed ones count as spent and are never chosen. */
  const queryVal = async (phis: Float32Array[], tag: number): Promise<(number | null)[]> => {
    const all = new Float32Array(phis.length * d);
    phis.forEach((p, i) => all.set(p, i * d));
    const scores = model.predict(all, phis.length, deps.valRows);
    const per = scores.length / phis.length;
    const results = await deps.oracle.evaluate(
      phis.map((_, i) => ({ jobId, taskId: tag, step: i, split: 'val', scores: scores.slice(i * per, (i + 1) * per) })),
    );
    return results.map((r) => (r.ok ? r.value.normalised : null));
  };
  const best = (values: (number | null)[]): number => {
    let bi = -1;
    values.forEach((v, i) => {
      if (v !== null && (bi < 0 || v < (values[bi] as number))) bi = i;
    });
    if (bi < 0) throw new DomainError('META_TEST_NO_OBSERVATION', 'meta-test: every validation query failed');
    return bi;
  };
  const valLoss = (phi: Float32Array): number => model.loss(phi, 1, deps.valRows, deps.valRows.length)[0] as number;
  const rows = new Int32Array(B);

  // ce: the pre-trained model.
  const zero = new Float32Array(d);
  const ce: MethodRun = { test: await score(zero, 'test'), val: null, queries: 0 };

  // Loss-only fine-tuning from the start point.
  const batchRng = rng.fork(1);
  const lossPath: Float32Array[] = [start.slice()];
  const lossOpt = new BatchedOptimizer(cfg.lossOptimizer, cfg.lossLearningRate, d);
  const phiLoss = start.slice();
  let lossTime = 0;
  for (let t = 0; t < T; t++) {
    deps.sampler.sampleInto(batchRng, rows);
    const t0 = performance.now();
    const { grad } = model.lossAndGrad(phiLoss, 1, rows, B);
    lossOpt.step(phiLoss, grad);
    lossTime += performance.now() - t0;
    lossPath.push(phiLoss.slice());
  }
  const ceFinetune: MethodRun = { test: await score(phiLoss, 'test'), val: null, queries: 0 };
  const denseVals = await queryVal(lossPath, 1_000_000 + seed);
  const denseBest = best(denseVals);
  const dense: MethodRun = {
    test: await score(lossPath[denseBest] as Float32Array, 'test'),
    val: denormalise(denseVals[denseBest] as number, direction),
    queries: lossPath.length,
  };

  // MetricOpt: follow the value function from the start point.
  const esRng = rng.fork(2);
  const mRng = rng.fork(3);
  const vf = deps.valueFunction;
  const mPath: Float32Array[] = [start.slice()];
  const mOpt = new BatchedOptimizer(cfg.vfOptimizer, cfg.vfLearningRate, d);
  const phi = start.slice();
  const grads: Float32Array[] = [];
  const g = new Float32Array(d);
  let mTime = 0;
  for (let t = 0; t < T; t++) {
    deps.sampler.sampleInto(mRng, rows);
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
      mOpt.step(phi, g);
    }
    projectToBall(phi, start, cfg.trustRadius);
    mTime += performance.now() - t0;
    mPath.push(phi.slice());
  }
  let chosen = mPath[T] as Float32Array;
  let chosenVal: number | null = null;
  let mQueries = 0;
  if (cfg.endpointQueries > 0) {
    const q = Math.min(cfg.endpointQueries, T);
    const candidates = Array.from({ length: q }, (_, i) => mPath[Math.round((T * (i + 1)) / q)] as Float32Array);
    const vals = await queryVal(candidates, 2_000_000 + seed);
    const bi = best(vals);
    chosen = candidates[bi] as Float32Array;
    chosenVal = denormalise(vals[bi] as number, direction);
    mQueries = q;
  }
  const metricopt: MethodRun = { test: await score(chosen, 'test'), val: chosenVal, queries: mQueries };

  // Random search with the same number of real queries.
  const nRandom = Math.max(cfg.minRandomSearch, mQueries);
  const rsRng = rng.fork(4);
  const randoms = Array.from({ length: nRandom }, () => rsRng.normals(d, cfg.phi0Std));
  const rsVals = await queryVal(randoms, 3_000_000 + seed);
  const rsBest = best(rsVals);
  const randomSearch: MethodRun = {
    test: await score(randoms[rsBest] as Float32Array, 'test'),
    val: denormalise(rsVals[rsBest] as number, direction),
    queries: nRandom,
  };

  // Diagnostics for the plot (in-process, not counted as queries).
  const curves: Curves = {
    ceFinetuneMetric: denseVals.map((v) => (v === null ? Number.NaN : denormalise(v, direction))),
    metricoptMetric: [],
    ceFinetuneLoss: lossPath.map(valLoss),
    metricoptLoss: mPath.map(valLoss),
    metricoptPredicted: mPath.map((p) => denormalise(vf.value(p), direction)),
  };
  for (const p of mPath) curves.metricoptMetric.push(await score(p, 'val'));

  return {
    seed,
    runs: { ce, ce_finetune: ceFinetune, ce_finetune_dense_eval: dense, random_search: randomSearch, metricopt },
    curves,
    lossOnlyStepMs: lossTime / T,
    metricoptStepMs: mTime / T,
  };
}
