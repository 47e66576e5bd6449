import type { SparseDataset } from '../data/dataset.js';
import { BalancedSampler } from '../data/sampler.js';
import { splitRows } from '../data/split.js';
import { mean, std } from '../method/stats.js';
import { CompiledValueFunction } from '../method/value-function-f32.js';
import { evaluateChecked } from '../metrics/checked-evaluator.js';
import type { Evaluator } from '../metrics/evaluator.js';
import type { AdaptedModel } from '../models/adapted-model.js';
import type { MetricOracle } from '../ports/metric-oracle.port.js';
import type { ObjectStore } from '../ports/object-store.port.js';
import type { ProgressReporter } from '../ports/progress.port.js';
import type { DemoReport, methodNames } from '../schemas/report.js';
import { type Curves, metaTestSeed, type SeedResult } from './meta-test.js';
import { metaTrain } from './meta-train.js';
import { pretrainAdaptedModel } from './pretrain.js';
import type { RunConfig } from './recipes.js';
import { saveCheckpoint } from './value-function-store.js';

export interface DemoDeps {
  dataset: SparseDataset;
  oracle: MetricOracle;
  /** The same metric in-process: final test scores and uncounted plot diagnostics. */
  evaluator: Evaluator;
  store: ObjectStore;
  progress: ProgressReporter;
  backend: string;
}

export interface DemoOutput {
  report: DemoReport;
  curves: Curves[];
}

/** Spearman below this marks the value function unhealthy (METHOD.md). */
export const HEALTHY_SPEARMAN = 0.7;

/**
 * The whole pipeline on one data set: split, pre-train, meta-train the value function (metric
 * queries through the oracle), save the checkpoint, meta-test every method over the seeds.
 */
export async function runDemo(cfg: RunConfig, deps: DemoDeps): Promise<DemoOutput> {
  const { dataset: ds, progress } = deps;
  const split = splitRows(ds.rows, cfg.seed);
  const valLabels = Int32Array.from(split.val, (r) => ds.labels[r] as number);
  const testLabels = Int32Array.from(split.test, (r) => ds.labels[r] as number);
  const sampler = new BalancedSampler(split.train, ds.labels, ds.classes);

  const t0 = performance.now();
  const model = await pretrainAdaptedModel(ds, split.train, cfg, progress);
  const t1 = performance.now();

  try {
    await probeEvaluator(model, deps.evaluator, split.val, valLabels);
    const jobId = `demo-${cfg.recipe}-${Date.now().toString(36)}`;
    const checkpointId = `${slug(ds.name)}-${slug(deps.oracle.metric.name)}-${cfg.recipe}`;
    const trained = await metaTrain(
      { ...cfg.metaTrain, checkpointId, jobId },
      { model, sampler, valRows: split.val, valLabels, oracle: deps.oracle, progress, dataset: ds.name },
    );
    const saved = await saveCheckpoint(deps.store, trained.checkpoint);
    const t2 = performance.now();

    const vf = new CompiledValueFunction(saved);
    const seeds = Array.from({ length: cfg.seeds }, (_, i) => cfg.seed + i);
    const results: SeedResult[] = [];
    progress.start('meta-test (every method, each seed)', seeds.length);
    for (const seed of seeds) {
      results.push(
        await metaTestSeed(
          cfg.metaTest,
          {
            model,
            sampler,
            valRows: split.val,
            testRows: split.test,
            valLabels,
            testLabels,
            oracle: deps.oracle,
            evaluator: deps.evaluator,
            valueFunction: vf,
          },
          seed,
          `${jobId}-test-${seed}`,
        ),
      );
      progress.tick(results.length);
    }
    progress.end();
    const t3 = performance.now();

    const summarise = (name: (typeof methodNames)[number]) => {
      const runs = results.map((r) => r.runs[name].test);
      return {
        mean: mean(runs),
        std: std(runs),
        runs,
        queries: results[0]?.runs[name].queries ?? 0,
        valRuns: results.map((r) => r.runs[name].val),
      };
    };
    const h = trained.health;
    const notes: string[] = [
      'Values are on the TEST split, natural direction; mean and sample std over meta-test seeds (pre-training and the value function are shared by all seeds).',
      'queries = real metric queries on the validation split spent by the method at meta-test (meta-training queries are in metaTrain).',
    ];
    if (deps.oracle.metric.name === 'jaccard') {
      notes.push('jaccard is positive-class Jaccard; the paper reports a different (higher) Jaccard, see METHOD.md.');
    }
    if (h.spearman !== null && h.spearman < HEALTHY_SPEARMAN) {
      notes.push(`value function unhealthy: held-out Spearman ${h.spearman.toFixed(3)} < ${HEALTHY_SPEARMAN}`);
    }
    const report: DemoReport = {
      dataset: ds.name,
      metric: deps.oracle.metric.name,
      direction: deps.oracle.metric.direction,
      recipe: cfg.recipe,
      seeds,
      results: {
        ce: summarise('ce'),
        ce_finetune: summarise('ce_finetune'),
        ce_finetune_dense_eval: summarise('ce_finetune_dense_eval'),
        random_search: summarise('random_search'),
        metricopt: summarise('metricopt'),
      },
      valueFunction: {
        id: saved.id,
        version: saved.version,
        heldOutMae: h.heldOutMae,
        constantMae: h.constantMae,
        spearman: h.spearman,
        heldOutObservations: h.heldOutObservations,
        healthy: h.spearman === null ? null : h.spearman >= HEALTHY_SPEARMAN,
      },
      metaTrain: {
        tasks: cfg.metaTrain.trajectories.tasks,
        queriesSent: trained.queries.sent,
        queriesFailed: trained.queries.failed,
      },
      timings: {
        pretrainS: (t1 - t0) / 1000,
        metaTrainS: (t2 - t1) / 1000,
        metaTestS: (t3 - t2) / 1000,
        lossOnlyStepMs: mean(results.map((r) => r.lossOnlyStepMs)),
        metricoptStepMs: mean(results.map((r) => r.metricoptStepMs)),
      },
      backend: deps.backend,
      notes,
      config: JSON.parse(JSON.stringify(cfg, (_k, v) => (v === Number.POSITIVE_INFINITY ? 'Infinity' : v))),
    };
    return { report, curves: results.map((r) => r.curves) };
  } finally {
    model.dispose();
  }
}

/**
 * Calls the evaluator once on the pre-trained model's validation predictions, so that a broken
 * evaluator (throws, NaN, out of range) stops the run at once with its own error instead of
 * after minutes of failed queries.
 */
export async function probeEvaluator(
  model: AdaptedModel,
  evaluator: Evaluator,
  rows: Int32Array,
  labels: Int32Array,
): Promise<void> {
  const scores = model.predict(new Float32Array(model.d), 1, rows);
  const r = await evaluateChecked(evaluator, { scores, labels, classes: model.classes });
  if (!r.ok) throw r.error;
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
