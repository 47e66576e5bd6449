import type { SparseDataset } from '../../data/dataset.js';
import { BalancedSampler, classPrior, NaturalSampler } from '../../data/sampler.js';
import { mean, pairedComparison } from '../../method/stats.js';
import { phiAt } from '../../method/trajectory.js';
import { CompiledValueFunction } from '../../method/value-function-f32.js';
import { scoredRows } from '../../metrics/context-columns.js';
import type { ComputePool } from '../../ports/compute-pool.port.js';
import type { Evaluator } from '../../ports/evaluator.port.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import { headroom } from '../../report/headroom.js';
import type { Curves } from '../../report/plot-svg.js';
import { baselineNames, type DemoReport } from '../../schemas/report.js';
import { healthyOf } from '../../storage/value-function-store.js';
import { err, ok, type Result } from '../../util/result.js';
import { cmaEsMinimiser } from './black-box-peers.js';
import { demoReport, type Replicate, type ReplicateOutcome } from './demo-report.js';
import { metaTestSeed } from './meta-test.js';
import type { BlackBoxMinimiser, SeedResult } from './meta-test-config.js';
import { type RunConfig, replicateSeed, reseed } from './recipes.js';
import type { RunCache } from './run-cache.js';
import { datasetSplit, replicateRows, withLabelNoise } from './run-rows.js';
import { type PipelineError, runTrainingPipeline } from './training-pipeline.js';

export { probeEvaluator, replicateRows } from './run-rows.js';

export interface DemoDeps {
  dataset: SparseDataset;
  oracle: MetricOracle;
  /** The same metric in-process: final test scores and uncounted plot diagnostics. */
  evaluator: Evaluator;
  store: ObjectStore;
  progress: ProgressReporter;
  backend: string;
  /** Worker threads for trajectories, metric-query predictions and ensemble members (shared/ports/compute-pool.port.ts). */
  pool?: ComputePool | undefined;
  /** Pre-trained backbones and trajectories reused across runs with the same inputs. */
  cache?: RunCache | undefined;
  /** The cma_es peer's minimiser (default: CMA-ES, shared/method/cma-es.ts). */
  blackBox?: BlackBoxMinimiser;
}

export interface DemoOutput {
  report: DemoReport;
  curves: Curves[];
}

/**
 * The whole pipeline, `cfg.replicates` times at different base seeds (split, pre-training,
 * trajectories, value function and meta-test all change): every method's mean with a 95%
 * interval across replicates, and metricopt's paired difference against each baseline.
 */
export async function runDemo(cfg: RunConfig, deps: DemoDeps): Promise<Result<DemoOutput, PipelineError>> {
  const outcomes: ReplicateOutcome[] = [];
  for (let r = 0; r < Math.max(1, cfg.replicates); r++) {
    const label = cfg.replicates > 1 ? `replicate ${r + 1}/${cfg.replicates}: ` : '';
    const outcome = await runReplicate(
      reseed(cfg, replicateSeed(cfg.seed, r)),
      r,
      deps,
      withPrefix(deps.progress, label),
    );
    if (!outcome.ok) return outcome;
    outcomes.push(outcome.value);
  }
  return ok({ report: demoReport(cfg, outcomes, deps), curves: outcomes.flatMap((o) => o.seeds.map((s) => s.curves)) });
}

/** One whole pipeline: split, pre-train, meta-train (queries through the oracle), save, meta-test every method over the seeds. */
async function runReplicate(
  cfg: RunConfig,
  index: number,
  deps: DemoDeps,
  progress: ProgressReporter,
): Promise<Result<ReplicateOutcome, PipelineError>> {
  const clean = deps.dataset;
  const rows = replicateRows(datasetSplit(clean, cfg), cfg);
  const noisy = withLabelNoise(clean, cfg);
  if (!noisy.ok) return noisy;
  const ds = noisy.value;
  const { train, select: selectRows, report: testRows } = rows;
  const labelsOf = (r: Int32Array) => Int32Array.from(r, (x) => ds.labels[x] as number);
  const sampler = new BalancedSampler(train, ds.labels, ds.classes);

  const jobId = `demo-${cfg.recipe}-${Date.now().toString(36)}-r${index}`;
  const checkpointId = `${slug(ds.name)}-${slug(deps.oracle.metric.name)}-${cfg.recipe}`;
  // Pre-training and meta-training: the pipeline `metricopt train` runs, in memory.
  const outcome = await runTrainingPipeline(
    { cfg, checkpointId, queryJobId: jobId },
    {
      dataset: ds,
      evaluator: deps.evaluator,
      oracle: deps.oracle,
      store: deps.store,
      progress,
      pool: deps.pool,
      cache: deps.cache,
    },
  );
  if (outcome.kind === 'failed') return err(outcome.error);
  if (outcome.kind !== 'done' || !outcome.trained) throw new Error('runReplicate: an in-memory run cannot stop');
  // Meta-test runs in the main thread: the workers' memory is freed until the next replicate.
  await deps.pool?.release();
  const { model, checkpoint: saved, trained } = outcome;
  const t2 = performance.now();
  try {
    const vf = new CompiledValueFunction(saved);
    const bestObserved = bestObservation(trained);
    const testDeps = {
      model,
      sampler,
      naturalSampler: new NaturalSampler(train),
      trainPrior: classPrior(train, ds.labels, ds.classes),
      bestObserved,
      valRows: selectRows,
      observeRows: rows.observe,
      observeLabels: labelsOf(rows.observe),
      testRows,
      valLabels: labelsOf(selectRows),
      testLabels: labelsOf(testRows),
      oracle: deps.oracle,
      evaluator: deps.evaluator,
      valueFunction: vf,
      metaTrainQueries: trained.queries.sent,
      ...(ds.context ? { context: ds.context } : {}),
      blackBox: deps.blackBox ?? cmaEsMinimiser,
    };
    const seeds: SeedResult[] = [];
    progress.start('meta-test (every method, each seed)', cfg.seeds);
    for (let i = 0; i < cfg.seeds; i++) {
      const seed = await metaTestSeed(cfg.metaTest, testDeps, cfg.seed + i, `${jobId}-test-${i}`);
      if (!seed.ok) return seed;
      seeds.push(seed.value);
      progress.tick(seeds.length);
    }
    progress.end();
    const t3 = performance.now();
    // Headroom on the reported rows, from the pre-trained scores (optimistic oracles).
    const room = await headroom(
      deps.evaluator,
      model.predict(new Float32Array(model.d), 1, testRows),
      scoredRows(ds, testRows, testDeps.testLabels),
    );
    const h = trained.health;
    const comparisons: Replicate['comparisons'] = {};
    for (const b of baselineNames) {
      const pairs = seeds.flatMap((x) => {
        const m = x.runs.metricopt?.test;
        const v = x.runs[b]?.test;
        return m === null || m === undefined || v === null || v === undefined ? [] : [[m, v] as const];
      });
      if (pairs.length > 0 && seeds.every((x) => x.runs[b])) {
        comparisons[b] = pairedComparison(
          pairs.map((p) => p[0]),
          pairs.map((p) => p[1]),
          deps.oracle.metric.direction,
        );
      }
    }
    return ok({
      seeds,
      metaTrainQueries: trained.queries.sent,
      replicate: {
        index,
        seed: cfg.seed,
        comparisons,
        headroom: room,
        valueFunction: {
          id: saved.id,
          version: saved.version,
          heldOutMae: h.heldOutMae,
          constantMae: h.constantMae,
          spearman: h.spearman,
          heldOutObservations: h.heldOutObservations,
          healthy: healthyOf(h.spearman),
        },
        metaTrain: {
          tasks: cfg.metaTrain.trajectories.tasks,
          queriesSent: trained.queries.sent,
          queriesFailed: trained.queries.failed,
        },
        timings: {
          pretrainS: outcome.timings.pretrainS,
          metaTrainS: outcome.timings.metaTrainS,
          trajectoriesS: outcome.timings.trajectoriesS,
          queriesS: outcome.timings.queriesS,
          fitS: outcome.timings.fitS,
          metaTestS: (t3 - t2) / 1000,
          lossOnlyStepMs: mean(seeds.map((r) => r.lossOnlyStepMs)),
          metricoptStepMs: mean(seeds.map((r) => r.metricoptStepMs)),
        },
      },
    });
  } finally {
    model.dispose();
  }
}

/** The phi with the best (lowest normalised) metric among meta-training's observations. */
export function bestObservation(trained: {
  trajectories: Parameters<typeof phiAt>[0];
  observations: { step: number; value: number }[][];
}): { phi: Float32Array; value: number } | null {
  let best: { task: number; step: number; value: number } | null = null;
  trained.observations.forEach((obs, task) => {
    for (const o of obs) if (best === null || o.value < best.value) best = { task, step: o.step, value: o.value };
  });
  if (best === null) return null;
  const b = best as { task: number; step: number; value: number };
  return { phi: phiAt(trained.trajectories, b.task, b.step).slice(), value: b.value };
}

function withPrefix(p: ProgressReporter, prefix: string): ProgressReporter {
  if (!prefix) return p;
  return {
    start: (stage, total) => p.start(`${prefix}${stage}`, total),
    tick: (done, note) => p.tick(done, note),
    end: (summary) => p.end(summary),
  };
}

function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[^a-z0-9]+/, '')
      .slice(0, 30) || 'data'
  );
}
