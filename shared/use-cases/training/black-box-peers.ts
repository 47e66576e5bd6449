import { CmaEs } from '../../method/cma-es.js';
import type { BlackBoxMinimiser } from './meta-test.js';

/**
 * The cma_es peer (issue 19): CMA-ES (shared/method/cma-es.ts, checked against Python cmaes)
 * over the same phi as metricopt, each generation's lambda candidates asked at once and sent as
 * one batch of real queries, until the budget is spent; a failed query ranks last. Returns the
 * best point it evaluated.
 */
export const cmaEsMinimiser: BlackBoxMinimiser = async (f, x0, sigma0, budget, seed) => {
  const created = CmaEs.create(x0, sigma0, { seed });
  if (!created.ok) throw created.error;
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
  return found && Number.isFinite(found.value) ? found : null;
};
