import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { type Command, InvalidArgumentError } from 'commander';
import { openQueue, openStoreLocation } from '../../shared/adapters/from-url.js';
import { jsonLinesLogger } from '../../shared/adapters/logger.json-lines.js';
import { shutdownSignal } from '../../shared/adapters/shutdown-signal.js';
import { localDatasetSource } from '../../shared/adapters/job-inputs.js';
import { InProcessMetricOracle, inProcessOracles } from '../../shared/adapters/metric-oracle.in-process.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { JobSpec } from '../../shared/schemas/job.js';
import { overridesOf, parseJobSpec, parseJobSpecText } from '../../shared/use-cases/jobs/job-spec.js';
import { loadJobSpec, trainValueFunction } from '../../shared/use-cases/jobs/train-value-function.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { runTrainerWorker, submitJob } from '../../shared/use-cases/jobs/trainer-worker.js';
import { CliError } from '../errors.js';
import { storeOptionsFromEnv } from '../locations.js';
import { stderrProgress } from '../progress.js';
import {
  addRunOptions,
  buildRunConfig,
  metaTestFlagsGiven,
  openComputePool,
  prepareRun,
  type RunOptions,
} from '../run-options.js';
import { cliEnv } from '../env.js';

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'Run a training job: pre-train, meta-train the value function and write its checkpoint to an object store (no meta-test). Resumable: run it again with the same --job-id (or job file) to continue.',
    );
  addRunOptions(cmd)
    .option(
      '--store <dir|s3://bucket/prefix>',
      'object store for the job state and the checkpoint: a store folder, a `metricopt demo --out` folder (its store/), or S3, as serve, fit and jobs status read it',
      './metricopt-store',
    )
    .option('--id <id>', 'checkpoint id (default: <dataset>-<metric>-<recipe>)')
    .option('--job <file>', 'a job spec (JSON, shared/schemas/job.ts); the run options above are then ignored')
    .option('--job-id <id>', "the job's id: resumes the job stored under it, or names a new one")
    .option(
      '--queue <dir|sqs-url>',
      'the jobs queue: the job is submitted to it and run by trainer workers (a fan-out job is split into chunk tasks)',
    )
    .option('--workers <n>', 'local trainer worker processes started for a --queue job', positiveInt, 1)
    .option('--worker', 'run as a trainer worker on --queue until stopped (what the ECS trainer task runs)')
    .option('--idle-exit <seconds>', 'a --worker exits after this long without a message', positiveInt)
    .action(async (o: RunOptions) => {
      // SIGTERM (ECS before a spot reclaim, docker stop): a final checkpoint, then exit 0.
      const stop = shutdownSignal(() =>
        process.stderr.write('metricopt train: stopping; writing a final checkpoint\n'),
      );
      try {
        if (o.worker) await runWorker(o, stop.signal);
        else if (o.queue !== undefined) await runQueued(o, stop.signal);
        else await runTrain(o, stop.signal);
      } finally {
        stop.dispose();
      }
    });
}

async function runTrain(o: RunOptions, signal: AbortSignal): Promise<void> {
  const store = await openStoreLocation(o.store as string, storeOptionsFromEnv());
  const { spec, inputs } = await jobFromOptions(o, store);
  const pool = openComputePool(o, inputs.dataset, inputs.backend);
  const result = await trainValueFunction(spec, {
    store,
    dataset: inputs.dataset,
    evaluator: inputs.evaluator,
    oracle: new InProcessMetricOracle(inputs.evaluator),
    progress: stderrProgress(),
    backend: inputs.backend,
    signal,
    pool,
  }).finally(() => pool?.close());
  if (!result.ok) throw result.error;
  const out = result.value;
  const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
  if (out.kind === 'already-done') {
    process.stdout.write(
      `job ${spec.id} is already done: checkpoint ${out.valueFunction.id} v${out.valueFunction.version} in ${store.location}; nothing changed\n`,
    );
  } else if (out.kind === 'interrupted') {
    process.stdout.write(
      `job ${spec.id} interrupted in stage ${out.stage} (${out.tasksDone} tasks, ${out.evaluationsDone} metric evaluations done); resume with: metricopt train --job-id ${spec.id} --store ${o.store as string}\n`,
    );
  } else {
    const h = out.health;
    process.stdout.write(
      `checkpoint ${out.checkpoint.id} v${out.checkpoint.version} written to ${store.location}${out.resumed ? ` (job ${spec.id} resumed)` : ''}\nheld-out MAE ${f(h.heldOutMae)} (constant ${f(h.constantMae)}), Spearman ${f(h.spearman)}\n`,
    );
  }
}

/** The job: a job file, the job stored under --job-id, or one built from the run options. */
async function jobFromOptions(o: RunOptions, store: ObjectStore): Promise<{ spec: JobSpec; inputs: Inputs }> {
  const withInputs = async (spec: JobSpec) => ({ spec, inputs: await prepareRun(await runOptionsOf(spec, o)) });
  const jobId = o.jobId as string | undefined;
  if (o.job !== undefined) {
    const file = o.job as string;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new CliError('USAGE', `--job ${file}: ${(e as Error).message}`);
    }
    const parsed = parseJobSpecText(text, file);
    if (!parsed.ok) throw parsed.error;
    if (jobId === undefined || jobId === parsed.value.id) return withInputs(parsed.value);
    const renamed = parseJobSpec({ ...parsed.value, id: jobId }, `${file} (--job-id)`);
    if (!renamed.ok) throw renamed.error;
    return withInputs(renamed.value);
  }
  if (jobId !== undefined) {
    const stored = await loadJobSpec(store, jobId);
    if (stored.ok) return withInputs(stored.value);
    if (stored.error.code !== 'JOB_NOT_FOUND') throw stored.error;
  }
  // A new job from the flags. Paths become absolute, so that a resume from elsewhere finds them.
  const metaTest = metaTestFlagsGiven(o);
  if (metaTest.length > 0) {
    throw new CliError(
      'USAGE',
      `${metaTest.join(', ')}: meta-test settings; train ends at the value function's checkpoint and runs no meta-test (use them with metricopt demo)`,
    );
  }
  const cfg = buildRunConfig(o);
  const source = o.dataset as string;
  const absolute = (path: string) => (/^[a-z0-9]+:\/\//.test(path) ? path : resolve(path));
  const dataset = ['a9a', 'digits', 'fashion-mnist'].includes(source) ? source : absolute(source);
  const inputs = await prepareRun(o);
  const { dataset: ds, evaluator } = inputs;
  const valueFunctionId =
    (o.id as string | undefined) ??
    `${ds.name}-${evaluator.name}-${cfg.recipe}`.toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
  const parsed = parseJobSpec(
    {
      format: 'metricopt.job',
      schemaVersion: 1,
      id: jobId ?? `train-${Date.now().toString(36)}`,
      dataset: {
        source: dataset,
        ...(o.features !== undefined ? { features: o.features } : {}),
        ...(o.positiveLabel !== undefined ? { positiveLabel: o.positiveLabel } : {}),
        ...(o.context !== undefined ? { context: absolute(o.context as string) } : {}),
        ...(o.groupFeature !== undefined ? { groupFeature: o.groupFeature } : {}),
      },
      metric: o.evaluator ? { module: resolve(o.evaluator as string) } : { builtin: o.metric },
      recipe: cfg.recipe,
      seed: cfg.seed,
      overrides: overridesOf(cfg),
      output: { valueFunctionId },
    },
    'train',
  );
  if (!parsed.ok) {
    const e = parsed.error;
    throw new CliError(
      'USAGE',
      e.message.replace(/^train: output\.valueFunctionId/, '--id').replace(/^train: id/, '--job-id'),
    );
  }
  return { spec: parsed.value, inputs };
}

type Inputs = Awaited<ReturnType<typeof prepareRun>>;

/** The options `prepareRun` loads the job's data set and evaluator from (an s3:// data set is downloaded first). */
async function runOptionsOf(spec: JobSpec, o: RunOptions): Promise<RunOptions> {
  const source = await localDatasetSource(spec.dataset.source, storeOptionsFromEnv());
  return {
    dataset: source,
    features: spec.dataset.features,
    positiveLabel: spec.dataset.positiveLabel,
    groupFeature: spec.dataset.groupFeature,
    ...(spec.dataset.context === undefined
      ? {}
      : { context: await localDatasetSource(spec.dataset.context, storeOptionsFromEnv()) }),
    ...(spec.dataset.dataDir === undefined ? {} : { dataDir: jobDataDir(spec.dataset.dataDir) }),
    // Checked against the data set's classes when it is loaded (USAGE, as the flag is).
    ...(spec.overrides.rareClass === undefined ? {} : { rareClass: spec.overrides.rareClass.label }),
    ...('builtin' in spec.metric ? { metric: spec.metric.builtin } : { evaluator: spec.metric.module }),
    backend: o.backend,
    evaluatorTimeoutMs: o.evaluatorTimeoutMs,
  };
}

/** A job's data folder: a path as is (resolved here), a file:// URL as its path. */
function jobDataDir(dir: string): string {
  return dir.startsWith('file://') ? fileURLToPath(dir) : resolve(dir);
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

async function jobsQueue(o: RunOptions) {
  return openQueue(o.queue as string, { deadLetterQueueUrl: cliEnv().METRICOPT_JOBS_DLQ });
}

/** `--worker`: one trainer worker on the jobs queue, until SIGTERM (or --idle-exit). */
async function runWorker(o: RunOptions, signal: AbortSignal): Promise<void> {
  if (o.queue === undefined) throw new CliError('USAGE', '--worker needs --queue (the jobs queue)');
  const store = await openStoreLocation(o.store as string, storeOptionsFromEnv());
  const queue = await jobsQueue(o);
  let backend = '';
  const logger = jsonLinesLogger((line) => process.stdout.write(line), { base: { worker: process.pid } });
  const summary = await runTrainerWorker({
    store,
    queue,
    async load(spec) {
      const inputs = await prepareRun(await runOptionsOf(spec, o));
      backend = inputs.backend;
      return { ...inputs, oracle: new InProcessMetricOracle(inputs.evaluator) };
    },
    fitOracles: inProcessOracles(builtinEvaluator),
    get backend() {
      return backend;
    },
    progress: { start() {}, tick() {}, end() {} },
    workerId: `${process.pid}`,
    signal,
    idleExitMs: o.idleExit === undefined ? undefined : (o.idleExit as number) * 1000,
    logger,
  });
  logger.info('worker-exit', { ...summary });
}

/** `--queue`: submit the job, start --workers local workers, follow the job's status until it is done. */
async function runQueued(o: RunOptions, signal: AbortSignal): Promise<void> {
  const store = await openStoreLocation(o.store as string, storeOptionsFromEnv());
  const { spec } = await jobFromOptions(o, store);
  const submitted = await submitJob(spec, { store, queue: await jobsQueue(o) });
  if (!submitted.ok) throw submitted.error;
  const args = [
    process.argv[1] as string,
    'train',
    '--worker',
    '--store',
    o.store as string,
    '--queue',
    o.queue as string,
  ];
  if (o.backend) args.push('--backend', o.backend as string);
  const workers = Array.from({ length: o.workers as number }, () =>
    spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] }),
  );
  const exited = workers.map((w) => new Promise<number | null>((r) => w.on('exit', (code) => r(code))));
  let running = workers.length;
  for (const e of exited) void e.then(() => running--);
  const progress = stderrProgress();
  let started = false;
  let shown = -1;
  try {
    for (;;) {
      const status = await readJobStatus(store, spec.id);
      if (status.ok) {
        const s = status.value;
        if (!started) {
          progress.start(`job ${spec.id}: trajectory tasks (${o.workers} workers)`, s.tasks.total);
          started = true;
        }
        if (s.tasks.done !== shown) {
          progress.tick(s.tasks.done, `${s.evaluations.returned} metric values`);
          shown = s.tasks.done;
        }
        if (s.state === 'done' && s.valueFunction) {
          progress.end();
          const h = s.heldOut;
          const f = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));
          process.stdout.write(
            `checkpoint ${s.valueFunction.id} v${s.valueFunction.version} written to ${store.location} by ${o.workers} worker(s)\nheld-out MAE ${f(h?.mae)} (constant ${f(h?.constantMae)}), Spearman ${f(h?.spearman)}\n`,
          );
          return;
        }
        if (s.lastError)
          throw new CliError('JOB_FAILED', `job ${spec.id}: ${s.lastError.code}: ${s.lastError.message}`);
      }
      if (signal.aborted) {
        if (started) progress.end('stopped');
        process.stdout.write(
          `job ${spec.id} interrupted; its tasks stay on ${o.queue as string}: run the same command again to continue\n`,
        );
        return;
      }
      if (running === 0)
        throw new CliError('JOB_FAILED', `job ${spec.id}: every trainer worker exited before the job was done`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGTERM');
    await Promise.all(exited);
  }
}
