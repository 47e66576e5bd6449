import { CmaEs, type CmaEsError } from '../../method/cma-es.js';
import { denormalise } from '../../metrics/evaluator.js';
import type { Rng } from '../../util/random.js';
import { ok, type Result } from '../../util/result.js';
import {
  type BlackBoxMinimiser,
  CMA_SIGMA0,
  type MetaTestConfig,
  type MetaTestDeps,
  type SeedResult,
} from './meta-test-config.js';
import type { SeedQueries } from './meta-test-queries.js';

/**
 * The cma_es peer (issue 19): CMA-ES (shared/method/cma-es.ts, checked against Python cmaes)
 * over the same phi as metricopt, each generation's lambda candidates asked at once and sent as
 * one batch of real queries, until the budget is spent; a failed query ranks last. Returns the
 * best point it evaluated.
 */
export const cmaEsMinimiser: BlackBoxMinimiser = async (f, x0, sigma0, budget, seed) => {
  const created = CmaEs.create(x0, sigma0, { seed });
  if (!created.ok) return created;
  const es = created.value;
  let best: { best: Float32Array; value: number } | null = null;
  let spent = 0;
  while (spent < budget) {
    const n = Math.min(es.params.lambda, budget - spent);
    const xs = Array.from({ length: n }, () => es.ask());
    const values = await f(xs.map((x) => Float32Array.from(x)));
    spent += n;
    const told = xs.map((x, i) => {
      const v = values[i];
      const value = v === null || v === undefined ? Number.POSITIVE_INFINITY : v;
      if (best === null || value < best.value) best = { best: Float32Array.from(x), value };
      return { x, value };
    });
    if (n === es.params.lambda) es.tell(told);
  }
  const found = best as { best: Float32Array; value: number } | null;
  return ok(found && Number.isFinite(found.value) ? found : null);
};

/**
 * The black-box peers at metricopt's TOTAL budget (meta-training's queries included), on the
 * selection rows: random search around the pre-trained point (random_search_total), and CMA-ES
 * from metricopt's start (cma_es); skipped, with the reason, when off or the budget is unknown.
 * `rng` is the seed's generator (forked here only when the peers run).
 */
export async function runBlackBoxPeers(
  cfg: MetaTestConfig,
  deps: MetaTestDeps,
  queries: Pick<SeedQueries, 'queryVal' | 'score'>,
  rng: Rng,
  mStart: Float32Array,
  mQueries: number,
  seed: number,
): Promise<Result<Pick<SeedResult, 'runs' | 'skipped'>, CmaEsError>> {
  const { queryVal, score } = queries;
  const d = deps.model.d;
  const direction = deps.evaluator.direction;
  const runs: SeedResult['runs'] = {};
  const skipped: SeedResult['skipped'] = {};
  const total = deps.metaTrainQueries === undefined ? 0 : deps.metaTrainQueries + mQueries;
  if (!cfg.blackBoxPeers) {
    skipped.random_search_total = 'off (--black-box-peers true runs it at the total budget)';
    skipped.cma_es = 'off (--black-box-peers true runs it at the total budget)';
  } else if (total > 0) {
    const tRng = rng.fork(6);
    let bestPhi: Float32Array = new Float32Array(d);
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
      const minimised = await deps.blackBox(
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
      if (!minimised.ok) return minimised;
      const found = minimised.value;
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
  return ok({ runs, skipped });
}
