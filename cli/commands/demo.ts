import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { MetricOracle } from '../../shared/ports/metric-oracle.port.js';
import { plotForestSvg, plotTrajectoriesSvg } from '../../shared/report/plot-svg.js';
import { formatResultsTable } from '../../shared/report/table.js';
import { multiClassMetaTestDefaults } from '../../shared/use-cases/training/recipes.js';
import { runDemo } from '../../shared/use-cases/training/run-demo.js';
import { startLocalQueueOracle } from '../local-queue-oracle.js';
import { stderrProgress } from '../progress.js';
import { addRunOptions, buildRunConfig, openComputePool, prepareRun } from '../run-options.js';

export function registerDemo(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      'The whole pipeline (pre-train, meta-train the value function, meta-test) with a results table, report.json, checkpoint and plot',
    );
  addRunOptions(cmd)
    .option('--seeds <n>', 'meta-test seeds within each replicate', positiveInt)
    .option(
      '--replicates <R>',
      'whole-pipeline replicates at different base seeds (95% intervals and paired comparisons need >= 2)',
      positiveInt,
    )
    .addOption(
      new Option(
        '--report-split <where>',
        'report on the test split, or on rows held out of training (for choosing defaults)',
      )
        .choices(['test', 'train-holdout'])
        .default('test'),
    )
    .option('--out <dir>', 'output folder (report.json, trajectories.svg, store/)', './metricopt-out')
    .option('--json', 'print the report JSON on stdout and nothing else')
    .option(
      '--run-cache <dir>',
      'keep pre-trained backbones and trajectories here by a hash of their inputs, and reuse them (runs on the same data and seeds with other metrics)',
    )
    .option('--via-queue', 'send every metric query through the durable local queue to evaluator worker processes')
    .option('--workers <n>', 'evaluator worker processes with --via-queue', (v) => Number(v), 2)
    .option(
      '--retry-delay-ms <ms>',
      'with --via-queue: first retry delay after an evaluator failure, doubled per delivery (default 1000)',
      nonNegativeInt,
    )
    .action(async (o: Record<string, unknown>) => {
      const built = buildRunConfig(o, o.seeds as number | undefined);
      const { backend, dataset, evaluator } = await prepareRun(o);
      // The decision-shifted start is the binary default; multi-class keeps the pre-trained point.
      const cfg =
        dataset.classes > 2 && o.start === undefined && o.endpointRule === undefined
          ? multiClassMetaTestDefaults(built)
          : built;
      const out = resolve(o.out as string);
      await mkdir(out, { recursive: true });
      const store = new FsObjectStore(join(out, 'store'));
      const progress = stderrProgress();
      let oracle: MetricOracle & { close?(): Promise<void> };
      if (o.viaQueue) {
        const queueOptions: Parameters<typeof startLocalQueueOracle>[0] = {
          metric: evaluator.name,
          workers: o.workers as number,
          dir: join(out, 'queue'),
        };
        if (o.evaluator) queueOptions.evaluatorModule = resolve(o.evaluator as string);
        if (o.retryDelayMs !== undefined) queueOptions.retryDelayMs = o.retryDelayMs as number;
        oracle = await startLocalQueueOracle(queueOptions);
      } else {
        oracle = new InProcessMetricOracle(evaluator);
      }
      const pool = openComputePool(o, dataset, backend);
      const cache = o.runCache ? { store: new FsObjectStore(resolve(o.runCache as string)), backend } : undefined;
      try {
        const demo = await runDemo(cfg, {
          dataset,
          oracle,
          evaluator,
          store,
          progress,
          backend,
          pool,
          cache,
        });
        // cli/main.ts prints an expected error as one `[CODE]: message` line and exits 1.
        if (!demo.ok) throw demo.error;
        const { report, curves } = demo.value;
        await writeFile(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
        const svg = plotTrajectoriesSvg(
          curves,
          report.metric,
          `${report.dataset}: meta-test trajectories, ${report.metric}, recipe ${report.recipe}`,
          report,
        );
        await writeFile(join(out, 'trajectories.svg'), svg);
        await writeFile(join(out, 'comparisons.svg'), plotForestSvg(report));
        if (o.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          process.stdout.write(`\n${formatResultsTable(report)}\n\n`);
          process.stdout.write(
            `wrote ${join(out, 'report.json')}, ${join(out, 'trajectories.svg')}, ${join(out, 'comparisons.svg')} and checkpoint ${report.valueFunction.id} v${report.valueFunction.version} in ${store.location}\n`,
          );
          process.stdout.write(`serve it with: npx metricopt serve --store ${out}\n`);
        }
      } finally {
        await pool?.close();
        await oracle.close?.();
      }
    });
}

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected an integer >= 1');
  return n;
}
