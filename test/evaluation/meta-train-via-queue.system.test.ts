import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { startLocalQueueOracle } from '../../cli/local-queue-oracle.js';
import { loadDataset } from '../../shared/adapters/dataset.fs.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { BalancedSampler } from '../../shared/data/sampler.js';
import { splitRows } from '../../shared/data/split.js';
import { mcr } from '../../shared/metrics/builtins.js';
import { FrozenMlpModel } from '../../shared/models/frozen-mlp.js';
import { pretrainMlp } from '../../shared/models/mlp.js';
import type { MetricOracle } from '../../shared/ports/metric-oracle.port.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { type MetaTrainResult, metaTrain } from '../../shared/use-cases/training/meta-train.js';
import type { MetaTrainConfig } from '../../shared/use-cases/training/meta-train-config.js';
import { tunedRecipe } from '../../shared/use-cases/training/recipes.js';
import { unwrap } from '../../shared/util/result.js';
import { tempDir } from './fixtures.js';

/**
 * End to end: meta-training a small value function on A9A with every metric query going
 * through the durable local queue to a pool of evaluator worker processes.
 */
beforeAll(() => {
  if (existsSync('dist/cli/commands/evaluate.js')) return;
  spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
});

const recipe = tunedRecipe(3);
const config = (jobId: string): MetaTrainConfig => ({
  ...recipe.metaTrain,
  trajectories: { ...recipe.metaTrain.trajectories, tasks: 16, steps: 10, queries: 4 },
  ensemble: 1,
  train: { ...recipe.metaTrain.train, epochs: 5 },
  heldOutFraction: 0.25,
  checkpointId: 'a9a-e2e',
  jobId,
});

let setup: { deps: Omit<Parameters<typeof metaTrain>[1], 'oracle'> };

beforeAll(async () => {
  const loaded = await loadDataset('a9a');
  if (!loaded.ok) throw loaded.error;
  const ds = loaded.value;
  const split = splitRows(ds.rows, recipe.seed);
  const frozen = await pretrainMlp(ds, split.train, recipe.model, { ...recipe.pretrain, epochs: 1 }, silentProgress);
  setup = {
    deps: {
      model: new FrozenMlpModel(frozen, ds),
      sampler: new BalancedSampler(split.train, ds.labels, ds.classes),
      valRows: split.val,
      valLabels: Int32Array.from(split.val, (r) => ds.labels[r] as number),
      progress: silentProgress,
      dataset: ds.name,
    },
  };
});

let inProcessRun: Promise<MetaTrainResult> | undefined;
/** The in-process reference, trained once for both tests. */
const inProcessReference = () => (inProcessRun ??= train(new InProcessMetricOracle(mcr), 'e2e-in-process'));

async function train(oracle: MetricOracle, jobId: string): Promise<MetaTrainResult> {
  return unwrap(await metaTrain(config(jobId), { ...setup.deps, oracle }));
}

describe('meta-training through the local evaluation queue (A9A)', () => {
  it('gives the same observations and the same value function as in-process evaluation (same seed)', async () => {
    const inProcess = await inProcessReference();
    const oracle = await startLocalQueueOracle({ metric: 'mcr', workers: 2, dir: await tempDir('metricopt-e2e-') });
    let queued: MetaTrainResult;
    try {
      queued = await train(oracle, 'e2e-queued');
    } finally {
      await oracle.close();
    }

    expect(queued.queries).toEqual({ sent: 64, failed: 0 });
    expect(queued.observations).toEqual(inProcess.observations);
    expect(queued.checkpoint.members).toEqual(inProcess.checkpoint.members);
    expect(queued.health).toEqual(inProcess.health);
  });

  it('carries on with the remaining observations when the evaluator fails 20% of the time at random', async () => {
    const dir = await tempDir('metricopt-e2e-flaky-');
    const modulePath = join(dir, 'flaky-mcr.mjs');
    await writeFile(
      modulePath,
      `export default {
  name: 'flaky-mcr',
  direction: 'minimize',
  version: 'test',
  evaluate({ scores, labels }) {
    if (Math.random() < 0.2) throw new Error('random outage');
    let wrong = 0;
    for (let i = 0; i < labels.length; i++) if ((scores[i] >= 0.5 ? 1 : 0) !== labels[i]) wrong++;
    return wrong / labels.length;
  },
};
`,
    );
    const reference = await inProcessReference();
    const oracle = await startLocalQueueOracle({
      metric: 'flaky-mcr',
      evaluatorModule: modulePath,
      workers: 3,
      dir,
      retryDelayMs: 100,
    });
    let flaky: MetaTrainResult;
    let dead: Awaited<ReturnType<typeof oracle.queue.listDeadLetters>>;
    try {
      flaky = await train(oracle, 'e2e-flaky');
      dead = await oracle.queue.listDeadLetters();
    } finally {
      await oracle.close();
    }

    // P(3 failed deliveries) = 0.8% per query: a permanent failure among 64 is possible, many are not.
    expect(flaky.queries.sent).toBe(64);
    expect(flaky.queries.failed).toBeLessThanOrEqual(4);
    expect(dead).toHaveLength(flaky.queries.failed);
    expect(
      dead.every((d) => d.reason?.startsWith("EVALUATOR_FAILED: evaluator 'flaky-mcr' threw: random outage")),
    ).toBe(true);
    // Every observation the trainer got is the true metric value at that point.
    flaky.observations.forEach((obs, task) => {
      const truth = new Map((reference.observations[task] ?? []).map((o) => [o.step, o.value]));
      for (const o of obs) expect(o.value).toBe(truth.get(o.step));
    });
    const got = flaky.observations.reduce((s, o) => s + o.length, 0);
    expect(got).toBe(64 - flaky.queries.failed);
    expect(flaky.checkpoint.members[0]?.layers.length).toBeGreaterThan(0);
    expect(flaky.health.heldOutMae).not.toBeNull();
  });
});
