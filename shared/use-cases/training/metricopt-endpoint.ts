import { surrogateSearch } from '../../method/surrogate-search.js';
import { denormalise } from '../../metrics/evaluator.js';
import { err, ok, type Result } from '../../util/result.js';
import type { UseCaseError } from './errors.js';
import { CMA_SIGMA0, type MetaTestConfig, type MetaTestDeps, type MethodRun } from './meta-test-config.js';
import { modelOutputs, readsEmbeddings } from './model-outputs.js';
import { noObservation, type SeedQueries } from './meta-test-queries.js';

/** What metricopt's endpoint is chosen from. */
export interface EndpointCandidates {
  /** The metricopt path phi_0 .. phi_T. */
  path: Float32Array[];
  /** Evenly spaced path points to query. */
  q: number;
  /** Anchor endpoints offered beside them (start, decision shift, best observation). */
  anchors: number;
  /** The loss-only start point and the decision-shifted point. */
  start: Float32Array;
  shifted: Float32Array;
  decisionStart: boolean;
  /** Real queries already spent on metricopt's start point. */
  startQueries: number;
}

/**
 * metricopt's endpoint: the last path point, or the best of the candidates by real queries on the
 * selection rows (`best`, or the `confirm` rule's even/odd looks), or the value-function guided
 * online search (cfg.onlineQueries) seeded with them. Returns the chosen phi, its validation
 * value (natural direction, when known), the queries metricopt spent and where it came from.
 */
export async function chooseEndpoint(
  cfg: MetaTestConfig,
  deps: MetaTestDeps,
  queries: SeedQueries,
  plan: EndpointCandidates,
  seed: number,
): Promise<
  Result<
    {
      chosen: Float32Array;
      val: number | null;
      queries: number;
      endpoint: NonNullable<MethodRun['endpoint']>;
    },
    UseCaseError
  >
> {
  const { queryScores, queryVal, best, on } = queries;
  const { model, valueFunction: vf } = deps;
  const { path: mPath, q, anchors, start, shifted, decisionStart, startQueries } = plan;
  const d = model.d;
  const T = cfg.steps;
  const direction = deps.evaluator.direction;
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
    if (!found) return err(noObservation());
    const m = recheck;
    if (m <= 0 || !deps.observeRows || !deps.observeLabels) return ok(found);
    // The m best distinct points on the selection rows, scored again on the observation rows.
    const top = [...found.observed].sort((a, b) => a.value - b.value).slice(0, m);
    await deps.oracle.registerSplit('observe', on(deps.observeRows, deps.observeLabels));
    const all = new Float32Array(top.length * d);
    top.forEach((o, i) => all.set(o.x, i * d));
    const again = await queryScores(
      modelOutputs(model, all, top.length, deps.observeRows, readsEmbeddings(deps.evaluator)),
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
    return ok({ ...found, best: chosenTop.x, value: chosenTop.value, fromInitial: chosenTop.fromInitial });
  };
  let chosen = mPath[T] as Float32Array;
  let chosenVal: number | null = null;
  let mQueries = startQueries;
  let endpoint: NonNullable<MethodRun['endpoint']> = 'path';
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
      const searched = await runOnlineSearch(candidates);
      if (!searched.ok) return searched;
      const found = searched.value;
      chosen = found.best;
      chosenVal = denormalise(found.value, direction);
      endpoint = found.fromInitial >= 0 ? (kinds[found.fromInitial] ?? 'path') : 'online';
    } else if (cfg.endpointRule === 'confirm') {
      // The default is the start point; a challenger must win on the even rows and confirm on the odd ones.
      const home = decisionStart ? candidates.length - (deps.bestObserved ? 2 : 1) : q;
      const even = await queryVal(candidates, 2_000_000 + seed, 'val-even');
      const evenBest = best(even);
      if (!evenBest.ok) return evenBest;
      const bi = evenBest.value;
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
      const valsBest = best(vals);
      if (!valsBest.ok) return valsBest;
      const bi = valsBest.value;
      chosen = candidates[bi] as Float32Array;
      chosenVal = denormalise(vals[bi] as number, direction);
      endpoint = kinds[bi] ?? 'path';
    }
  }
  if (q + anchors === 0 && (cfg.onlineQueries ?? 0) > 0) {
    const searched = await runOnlineSearch([chosen]);
    if (!searched.ok) return searched;
    const found = searched.value;
    chosen = found.best;
    chosenVal = denormalise(found.value, direction);
    endpoint = found.fromInitial >= 0 ? 'path' : 'online';
  }
  return ok({ chosen, val: chosenVal, queries: mQueries, endpoint });
}
