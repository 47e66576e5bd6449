import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { BalancedSampler } from '../../shared/data/sampler.js';
import { splitRows } from '../../shared/data/split.js';
import { metaTrain } from '../../shared/use-cases/meta-train.js';
import { pretrainAdaptedModel } from '../../shared/use-cases/pretrain.js';
import { probeEvaluator, replicateRows } from '../../shared/use-cases/run-demo.js';
import { saveCheckpoint } from '../../shared/use-cases/value-function-store.js';
import { CliError } from '../errors.js';
import { stderrProgress } from '../progress.js';
import { addRunOptions, buildRunConfig, prepareRun } from '../run-options.js';

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description('Pre-train, meta-train the value function and write its checkpoint to an object store (no meta-test)');
  addRunOptions(cmd)
    .option('--store <dir>', 'object store folder the checkpoint is written to', './metricopt-store')
    .option('--id <id>', 'checkpoint id (default: <dataset>-<metric>-<recipe>)')
    .action(async (o: Record<string, unknown>) => {
      const cfg = buildRunConfig(o);
      const { dataset: ds, evaluator } = await prepareRun(o);
      const storeDir = resolve(o.store as string);
      await mkdir(storeDir, { recursive: true });
      const store = new FsObjectStore(storeDir);
      const progress = stderrProgress();
      // The rows the demo's meta-training uses, so both write the same checkpoint for a seed.
      const rows = replicateRows(splitRows(ds.rows, cfg.seed), cfg);
      const model = await pretrainAdaptedModel(ds, rows.train, cfg, progress);
      const id =
        (o.id as string | undefined) ??
        `${ds.name}-${evaluator.name}-${cfg.recipe}`.toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
      if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(id))
        throw new CliError('USAGE', `--id '${id}' must be lower-case letters, digits, '.', '_' or '-'`);
      try {
        const valLabels = Int32Array.from(rows.observe, (r) => ds.labels[r] as number);
        await probeEvaluator(model, evaluator, rows.observe, valLabels);
        const trained = await metaTrain(
          { ...cfg.metaTrain, checkpointId: id, jobId: `train-${Date.now().toString(36)}` },
          {
            model,
            sampler: new BalancedSampler(rows.train, ds.labels, ds.classes),
            valRows: rows.observe,
            valLabels,
            oracle: new InProcessMetricOracle(evaluator),
            progress,
            dataset: ds.name,
          },
        );
        const saved = await saveCheckpoint(store, trained.checkpoint);
        const h = trained.health;
        const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
        process.stdout.write(
          `checkpoint ${saved.id} v${saved.version} written to ${store.location}\nheld-out MAE ${f(h.heldOutMae)} (constant ${f(h.constantMae)}), Spearman ${f(h.spearman)}\n`,
        );
      } finally {
        model.dispose();
      }
    });
}
