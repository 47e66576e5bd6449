import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type Command, Option } from 'commander';
import { type BackendPreference, selectBackend } from '../../shared/adapters/compute-backend.js';
import { shutdownSignal } from '../../shared/adapters/shutdown-signal.js';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { inProcessOracles } from '../../shared/adapters/metric-oracle.in-process.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { FitJobSpec } from '../../shared/schemas/job.js';
import {
  createFitJob,
  loadFitJobSpec,
  observationsPrefix,
  parseFitJobSpec,
} from '../../shared/use-cases/byom/fit-job-spec.js';
import type { FitOracleFactory } from '../../shared/ports/fit.port.js';
import {
  checkPredictionRefs,
  parseFitLabels,
  putFitLabels,
  putFitPredictions,
} from '../../shared/use-cases/byom/fit-inputs.js';
import { runFitJob } from '../../shared/use-cases/byom/fit-observations.js';
import {
  addObservationBatch,
  loadObservationSet,
  trajectoriesOf,
  withBatch,
} from '../../shared/use-cases/byom/observation-store.js';
import { ObservationError, parseObservationText } from '../../shared/use-cases/byom/observation-batches.js';
import { ok } from '../../shared/util/result.js';
import { CliError } from '../errors.js';
import { backendOption, bool, int, num, vfEngineOption } from '../option-parsers.js';
import { openStoreLocation as openValueStore } from '../../shared/adapters/from-url.js';
import { storeOptionsFromEnv } from '../locations.js';
import { stderrProgress } from '../progress.js';
import { cliEnv } from '../env.js';

/** Largest observation file `metricopt fit` reads by default (--max-bytes). */
export const DEFAULT_FIT_MAX_BYTES = 64 * 1024 * 1024;

interface FitOptions {
  observations?: string;
  id?: string;
  direction?: 'minimize' | 'maximize';
  metricName: string;
  recipe: 'paper' | 'tuned';
  seed: number;
  store: string;
  job?: string;
  maxBytes: number;
  labels?: string;
  predictions?: string;
  evaluatorModule?: string;
  evaluatorTimeoutMs: string;
  backend?: BackendPreference;
  labelling?: 'gp' | 'linear';
  training?: 'online' | 'offline';
  standardise?: boolean;
  batchNorm?: boolean;
  ensemble?: number;
  epochs?: number;
  vfTrainLr?: number;
  gamma?: number;
  oeWeight?: number;
  vfEngine?: 'f32' | 'tfjs';
  heldOutFraction?: number;
  trainStride?: number;
}

/**
 * `metricopt fit`: a value function from observations a remote training loop recorded (bring
 * your own model, docs/bring-your-own-model.md). Always a job: `--job ID` names it (default
 * fit-<time>); run again with `--job ID` (no --observations needed) to resume it.
 */
export function registerFit(program: Command): void {
  program
    .command('fit')
    .description(
      'Fit a value function to recorded observations (JSON lines {trajectory, step, phi, metric?}) and write checkpoint --id to the store; a resumable job.',
    )
    .option('--observations <file.jsonl>', 'the observations (docs/bring-your-own-model.md)')
    .option('--id <id>', 'value-function id to write (the next version if it exists)')
    .addOption(new Option('--direction <d>', 'direction of the metric values').choices(['minimize', 'maximize']))
    .option('--metric-name <name>', 'name of the metric in the checkpoint', 'metric')
    .addOption(
      new Option('--recipe <name>', 'value-function settings: paper or tuned')
        .choices(['paper', 'tuned'])
        .default('tuned'),
    )
    .option('--seed <n>', 'seed of the held-out split and the training', int(0), 1)
    .option('--store <dir|s3://bucket/prefix>', 'object store for the job and the checkpoint', './metricopt-store')
    .option('--job <id>', 'job id: names a new fit job, or resumes the one stored under it')
    .option('--max-bytes <n>', 'largest observation file read', int(1), DEFAULT_FIT_MAX_BYTES)
    .option('--labels <file.json>', 'labels {classes, labels} that lines with predictions are scored on')
    .option(
      '--predictions <dir>',
      "folder of the float32 prediction files that lines name (default: the observation file's folder)",
    )
    .option('--evaluator-module <file.mjs>', 'a user evaluator module that lines with predictions may name')
    .option('--evaluator-timeout-ms <ms>', 'limit on one evaluator call (the module runs in a worker thread)', '60000')
    .addOption(new Option('--labelling <kind>', 'densify observations with a GP or linearly').choices(['gp', 'linear']))
    .addOption(new Option('--training <kind>', 'online Reptile or offline').choices(['online', 'offline']))
    .option('--standardise <bool>', 'standardise phi and targets (true/false)', bool)
    .option('--batch-norm <bool>', 'BatchNorm in the value function (true/false)', bool)
    .option('--ensemble <n>', 'value-function ensemble members', int(1))
    .option('--epochs <n>', 'offline training epochs', int(1))
    .option('--vf-train-lr <lr>', 'training step size (Adam offline / inner SGD online)', num(0, true))
    .option('--gamma <g>', 'weight of the regression term in Eq. 2', num(0))
    .option('--oe-weight <w>', 'weight of the ordinal-embedding term in Eq. 2', num(0))
    .addOption(vfEngineOption())
    .option('--held-out-fraction <f>', 'fraction of trajectories held out for the health figures', num(0, true))
    .option('--train-stride <n>', 'train on every n-th recorded step', int(1))
    .addOption(backendOption())
    .action(async (o: FitOptions) => {
      const stop = shutdownSignal(() => process.stderr.write('metricopt fit: stopping before the fit\n'));
      try {
        await runFit(o, stop.signal, (text) => process.stdout.write(text));
      } finally {
        stop.dispose();
      }
    });
}

/** The fit command's work (exported for tests). */
export async function runFit(o: FitOptions, signal: AbortSignal, write: (text: string) => void): Promise<void> {
  const store = await openValueStore(o.store, storeOptionsFromEnv());
  const spec = await jobOf(o, store);
  if (o.observations !== undefined) {
    const file = o.observations;
    const size = await stat(file).then(
      (s) => s.size,
      (e: Error) => {
        throw new CliError('USAGE', `--observations ${file}: ${e.message}`);
      },
    );
    if (size > o.maxBytes) {
      throw new ObservationError(
        'OBSERVATIONS_TOO_LARGE',
        `${file}: ${size} bytes is more than --max-bytes ${o.maxBytes}`,
      );
    }
    // The whole file is checked before anything is written: a bad line leaves the store unchanged.
    const parsed = parseObservationText(await readFile(file, 'utf8'), file);
    if (!parsed.ok) throw parsed.error;
    const stored = withBatch(await loadObservationSet(store, observationsPrefix(spec)), parsed.value);
    const fitable = trajectoriesOf(stored, file, 'count');
    if (!fitable.ok) throw fitable.error;
    const created = await createFitJob(store, spec);
    if (!created.ok) throw created.error;
    // Labels and predictions that lines name: stored with the job (checked), before the observations.
    await importPredictionInputs(store, spec.id, stored, o.labels, o.predictions ?? dirname(file));
    const added = await addObservationBatch(store, observationsPrefix(spec), parsed.value, file);
    if (!added.ok) throw added.error;
    const a = added.value;
    write(
      `${file}: ${a.accepted} observations added${a.duplicates ? `, ${a.duplicates} already stored` : ''} (${a.total} in ${a.trajectories} trajectories, d = ${a.d})\n`,
    );
  }
  const backend = await selectBackend(o.backend ?? cliEnv().METRICOPT_BACKEND);
  const result = await runFitJob(spec, {
    store,
    progress: stderrProgress(),
    backend: backend.name,
    signal,
    oracleFor: await evaluatorsOf(o.evaluatorModule, timeoutOf(o.evaluatorTimeoutMs)),
  });
  if (!result.ok) throw result.error;
  const out = result.value;
  const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
  if (out.kind === 'already-done') {
    write(
      `job ${spec.id} is already done: checkpoint ${out.valueFunction.id} v${out.valueFunction.version} in ${store.location}; nothing changed\n`,
    );
  } else if (out.kind === 'interrupted') {
    write(
      `job ${spec.id} interrupted before the fit; resume with: metricopt fit --job ${spec.id} --store ${o.store}\n`,
    );
  } else {
    const h = out.health;
    write(
      `checkpoint ${out.checkpoint.id} v${out.checkpoint.version} written to ${store.location} (job ${spec.id})\nheld-out MAE ${f(h.heldOutMae)} (constant ${f(h.constantMae)}), Spearman ${f(h.spearman)} on ${h.heldOutObservations} observations${h.spearman !== null && h.spearman < 0.7 ? ' (unhealthy: below 0.7)' : ''}\n`,
    );
  }
}

/**
 * Stores the labels and every prediction file the set's lines name (`<dir>/<key>`), each
 * checked; a missing or malformed one ends the command before any observation is written.
 */
async function importPredictionInputs(
  store: ObjectStore,
  id: string,
  set: ReturnType<typeof withBatch>,
  labelsFile: string | undefined,
  dir: string,
): Promise<void> {
  const keys = new Set([...set.byKey.values()].flatMap((o) => (o.predictions ? [o.predictions.key] : [])));
  if (labelsFile !== undefined) {
    const text = await readFile(labelsFile, 'utf8').catch((e: Error) => {
      throw new CliError('USAGE', `--labels ${labelsFile}: ${e.message}`);
    });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new ObservationError('PREDICTIONS_INVALID', `${labelsFile}: not JSON (${(e as Error).message})`);
    }
    const labels = parseFitLabels(json, labelsFile);
    if (!labels.ok) throw labels.error;
    const stored = await putFitLabels(store, id, labels.value);
    if (!stored.ok) throw stored.error;
  }
  for (const key of keys) {
    const path = join(dir, key);
    const bytes = await readFile(path).catch(() => undefined);
    if (bytes === undefined) continue; // reported below with the line that names it
    const stored = await putFitPredictions(store, id, key, new Uint8Array(bytes));
    if (!stored.ok) throw stored.error;
  }
  const refs = await checkPredictionRefs(store, id, set);
  if (!refs.ok) {
    throw new ObservationError(
      refs.error.code as 'PREDICTIONS_INVALID',
      `${refs.error.message} (prediction files are read from ${dir}; labels from --labels)`,
      refs.error.details as never,
    );
  }
}

function timeoutOf(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0)
    throw new CliError('USAGE', `--evaluator-timeout-ms must be a positive integer, got '${raw}'`);
  return n;
}

/**
 * The evaluators lines with predictions may name: the built-ins, and --evaluator-module's, run
 * in worker threads so that its deadline holds even for code that never returns (EVALUATOR_TIMEOUT).
 */
async function evaluatorsOf(module: string | undefined, timeoutMs: number): Promise<FitOracleFactory> {
  if (module === undefined) return inProcessOracles(builtinEvaluator, timeoutMs);
  const loaded = await loadEvaluatorModuleInWorker(module);
  if (!loaded.ok) throw loaded.error;
  const user = loaded.value;
  return inProcessOracles((name) => (name === user.name ? ok(user) : builtinEvaluator(name)), timeoutMs);
}

/** The job stored under --job, or a new one from the flags. */
async function jobOf(o: FitOptions, store: Awaited<ReturnType<typeof openValueStore>>): Promise<FitJobSpec> {
  if (o.job !== undefined && o.observations === undefined) {
    const stored = await loadFitJobSpec(store, o.job);
    if (!stored.ok) throw stored.error;
    return stored.value;
  }
  if (o.observations === undefined)
    throw new CliError('USAGE', 'fit: --observations FILE is required (or --job ID to resume)');
  if (o.id === undefined) throw new CliError('USAGE', 'fit: --id is required (the value-function id to write)');
  if (o.direction === undefined) throw new CliError('USAGE', 'fit: --direction minimize|maximize is required');
  const metaTrain = Object.fromEntries(
    Object.entries({
      labelling: o.labelling,
      training: o.training,
      standardise: o.standardise,
      ensemble: o.ensemble,
      heldOutFraction: o.heldOutFraction,
      trainStride: o.trainStride,
    }).filter(([, v]) => v !== undefined),
  );
  const train = Object.fromEntries(
    Object.entries({
      batchNorm: o.batchNorm,
      epochs: o.epochs,
      gamma: o.gamma,
      oeWeight: o.oeWeight,
      engine: o.vfEngine,
      ...(o.vfTrainLr === undefined
        ? {}
        : o.training === 'online' || (o.training === undefined && o.recipe === 'paper')
          ? { innerLearningRate: o.vfTrainLr }
          : { learningRate: o.vfTrainLr }),
    }).filter(([, v]) => v !== undefined),
  );
  const parsed = parseFitJobSpec(
    {
      format: 'metricopt.fit-job',
      schemaVersion: 1,
      id: o.job ?? `fit-${Date.now().toString(36)}`,
      metric: { name: o.metricName, direction: o.direction },
      recipe: o.recipe,
      seed: o.seed,
      overrides: { metaTrain: { ...metaTrain, ...(Object.keys(train).length ? { train } : {}) } },
      output: { valueFunctionId: o.id },
    },
    'fit',
  );
  if (!parsed.ok) {
    throw new CliError(
      'USAGE',
      parsed.error.message.replace(/^fit: output\.valueFunctionId/, '--id').replace(/^fit: id/, '--job'),
    );
  }
  return parsed.value;
}
