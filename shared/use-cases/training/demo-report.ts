import type { SparseDataset } from '../../data/dataset.js';
import { meanCi95, mean, pairedComparison, std } from '../../method/stats.js';
import { normalise } from '../../metrics/evaluator.js';
import { EVALUATOR_ATTEMPTS } from '../../metrics/retry-policy.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import { gapClosed } from '../../report/headroom.js';
import { baselineNames, type DemoReport, type MethodName, methodNames } from '../../schemas/report.js';
import { HEALTHY_SPEARMAN } from '../../storage/value-function-store.js';
import type { SeedResult } from './meta-test-config.js';
import type { RunConfig } from './recipes.js';

export type Replicate = DemoReport['replicates'][number];
/** One replicate's pipeline: its report entry, every meta-test seed, and meta-training's queries. */
export interface ReplicateOutcome {
  replicate: Replicate;
  seeds: SeedResult[];
  metaTrainQueries: number;
}

/**
 * The demo report over the replicates: every method's mean with a 95% interval across
 * replicates, metricopt's paired difference against each baseline, the headroom summary, the
 * endpoint counts and the notes that say how to read it.
 */
export function demoReport(
  cfg: RunConfig,
  outcomes: ReplicateOutcome[],
  deps: { dataset: Pick<SparseDataset, 'name'>; oracle: Pick<MetricOracle, 'metric'>; backend: string },
): DemoReport {
  const direction = deps.oracle.metric.direction;
  const results: DemoReport['results'] = {};
  const skipped: DemoReport['skipped'] = {};
  for (const name of methodNames) {
    const reason = outcomes.flatMap((o) => o.seeds.map((s) => s.skipped[name])).find((x) => x !== undefined);
    if (reason !== undefined) {
      skipped[name] = reason;
      continue;
    }
    // Neither run nor skipped: not a method of this run (the metric-learning baselines of a
    // metric of the probabilities).
    if (outcomes.every((o) => o.seeds.every((s) => s.runs[name] === undefined))) continue;
    const runs = outcomes.map((o) =>
      o.seeds.map((s) => (s.runs[name] as NonNullable<SeedResult['runs'][MethodName]>).test),
    );
    // A run whose test score still failed after the retries is missing: left out of the means.
    const perReplicate = runs.map((r) => meanOrNull(r));
    const present = perReplicate.filter((v): v is number => v !== null);
    const queries = outcomes[0]?.seeds[0]?.runs[name]?.queries ?? 0;
    const usesMetaTraining = name === 'metricopt' || name === 'best_observed';
    // random_search_total and cma_es already spend metricopt's total at meta-test.
    if (present.length === 0) {
      skipped[name] = `every test score failed after ${EVALUATOR_ATTEMPTS} attempts`;
      continue;
    }
    results[name] = {
      ...meanCi95(present),
      std: std(present),
      missing: runs.flat().filter((v) => v === null).length,
      perReplicate,
      runs,
      queries,
      totalQueries: queries + (usesMetaTraining ? (outcomes[0]?.metaTrainQueries ?? 0) : 0),
      valRuns: outcomes.map((o) => o.seeds.map((s) => s.runs[name]?.val ?? null)),
    };
  }
  const comparisons: DemoReport['comparisons'] = {};
  const mo = results.metricopt;
  if (mo) {
    for (const b of baselineNames) {
      const base = results[b];
      if (!base) continue;
      const pairs = mo.perReplicate.flatMap((m, i) => {
        const v = base.perReplicate[i];
        return m === null || v === null || v === undefined ? [] : [[m, v] as const];
      });
      if (pairs.length > 0) {
        comparisons[b] = pairedComparison(
          pairs.map((p) => p[0]),
          pairs.map((p) => p[1]),
          direction,
        );
      }
    }
  }
  const oracleOf = (key: 'globalThreshold' | 'contextRule') => {
    const xs = outcomes.map((o) => o.replicate.headroom?.[key]).filter((v): v is number => typeof v === 'number');
    return xs.length === outcomes.length && xs.length > 0 ? meanCi95(xs) : null;
  };
  const globalThreshold = oracleOf('globalThreshold');
  const contextRule = oracleOf('contextRule');
  const oracleKey = contextRule ? 'contextRule' : globalThreshold ? 'globalThreshold' : null;
  const sign = direction === 'minimize' ? 1 : -1;
  const bestBaseline = baselineNames
    .filter((b) => results[b])
    .reduce<string | null>(
      (a, b) =>
        a === null || sign * (results[b]?.mean as number) < sign * (results[a as MethodName]?.mean as number) ? b : a,
      null,
    );
  const oracleMean = oracleKey === null ? null : (oracleKey === 'contextRule' ? contextRule : globalThreshold)?.mean;
  const headroomSummary: DemoReport['headroom'] = {
    label: 'optimistic oracle on the reported rows, from the pre-trained scores',
    globalThreshold: globalThreshold && { mean: globalThreshold.mean, ci95: globalThreshold.ci95 },
    contextRule: contextRule && { mean: contextRule.mean, ci95: contextRule.ci95 },
    rule: outcomes[0]?.replicate.headroom?.rule ?? null,
    oracle: oracleKey,
    bestBaseline,
    metricoptGapClosed:
      mo && bestBaseline && oracleMean !== null && oracleMean !== undefined
        ? gapClosed(
            normalise(mo.mean, direction),
            normalise(results[bestBaseline as MethodName]?.mean as number, direction),
            normalise(oracleMean, direction),
          )
        : null,
  };
  const metricoptEndpoints = { path: 0, start: 0, decision_shift: 0, best_observed: 0, online: 0 };
  for (const o of outcomes) for (const x of o.seeds) metricoptEndpoints[x.runs.metricopt?.endpoint ?? 'path']++;
  const last = outcomes[outcomes.length - 1] as ReplicateOutcome;
  const notes: string[] = [
    cfg.reportSplit === 'test'
      ? 'Values are on the TEST split, natural direction.'
      : 'Values are on rows HELD OUT OF THE TRAINING split (every 7th); the test split was not read.',
    `Each replicate (${outcomes.length}) re-runs split, pre-training, trajectories, value function and meta-test at its own base seed; a method's value per replicate is its mean over ${cfg.seeds} meta-test seed(s); ci95 is the 95% Student-t interval across replicates.`,
    'comparisons: metricopt minus the baseline per replicate (natural direction), its mean and 95% interval; better/worse when the interval lies wholly on one side of 0, else tie.',
    'queries = real validation metric queries at meta-test per run; totalQueries adds the meta-training queries the method relies on.',
    cfg.selectionSplit === 'separate'
      ? 'Validation is halved: meta-training observes the metric on one half, every meta-test choice (endpoints, dense-eval, random search, threshold) is made on the other.'
      : 'Meta-training observations and meta-test choices share the whole validation split.',
  ];
  if (outcomes.length < 2) {
    notes.push('One replicate: no confidence interval can be given (run --replicates 5 or more).');
  }
  if (deps.oracle.metric.name === 'jaccard') {
    notes.push('jaccard is positive-class Jaccard; the paper reports a different (higher) Jaccard, see METHOD.md.');
  }
  for (const o of outcomes) {
    const sp = o.replicate.valueFunction.spearman;
    if (sp !== null && sp < HEALTHY_SPEARMAN) {
      notes.push(
        `replicate ${o.replicate.index}: value function unhealthy: held-out Spearman ${sp.toFixed(3)} < ${HEALTHY_SPEARMAN}`,
      );
    }
  }
  const report: DemoReport = {
    dataset: deps.dataset.name,
    metric: deps.oracle.metric.name,
    direction,
    recipe: cfg.recipe,
    reportSplit: cfg.reportSplit,
    selectionSplit: cfg.selectionSplit,
    seeds: Array.from({ length: cfg.seeds }, (_, i) => i),
    results,
    skipped,
    metricoptEndpoints,
    comparisons,
    replicates: outcomes.map((o) => o.replicate),
    headroom: headroomSummary,
    valueFunction: last.replicate.valueFunction,
    backend: deps.backend,
    notes,
    config: JSON.parse(JSON.stringify(cfg, (_k, v) => (v === Number.POSITIVE_INFINITY ? 'Infinity' : v))),
  };
  return report;
}

function meanOrNull(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? mean(v) : null;
}
