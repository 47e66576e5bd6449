import { type Command, Option } from 'commander';
import { z } from 'zod';
import { loadRowContext } from '../shared/adapters/context-file.fs.js';
import { loadDataset } from '../shared/adapters/dataset.fs.js';
import { type BackendPreference, selectBackend } from '../shared/adapters/compute-backend.js';
import { defaultThreads, WorkerThreadComputePool } from '../shared/adapters/compute-pool.worker-thread.js';
import type { ComputePool } from '../shared/ports/compute-pool.port.js';
import type { SparseDataset } from '../shared/data/dataset.js';
import type { Evaluator } from '../shared/ports/evaluator.port.js';
import { builtinEvaluator } from '../shared/metrics/registry.js';
import { withContextFor } from '../shared/metrics/context-metrics.js';
import { filmLayerOutOfRange } from '../shared/models/mlp.js';
import { loadEvaluatorModuleInWorker } from '../shared/adapters/evaluator-module.worker-thread.js';
import { type RunConfig, runConfigSchema } from '../shared/schemas/run-config.js';
import { imageRunDefaults, recipe } from '../shared/use-cases/training/recipes.js';
import { cliEnv } from './env.js';
import { CliError } from './errors.js';
import { dataDirFromEnv } from './locations.js';
import { backendOption, bool, int, num, vfEngineOption } from './option-parsers.js';

/** Rank of `--adapter low-rank` unless --adapter-rank says otherwise. */
export const DEFAULT_LOGIT_RANK = 32;

type Leaf = string | number | boolean | readonly unknown[];
/** The dotted path of every setting of T (`metaTrain.trajectories.tasks`). */
type PathOf<T> = {
  [K in keyof T & string]-?: NonNullable<T[K]> extends Leaf ? K : `${K}.${PathOf<NonNullable<T[K]>>}`;
}[keyof T & string];
export type RunConfigPath = PathOf<RunConfig>;

/** The schema of one setting, unwrapped from `exactOptional`. */
function schemaAt(path: RunConfigPath): z.ZodType {
  let s: z.ZodType = runConfigSchema;
  for (const key of path.split('.')) {
    while (s instanceof z.ZodExactOptional || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
    s = (s as z.ZodObject).shape[key] as z.ZodType;
  }
  while (s instanceof z.ZodExactOptional || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s;
}

/** The value parser and choices of a setting's flag, from its schema (`positive()` -> a number > 0). */
function fromSchema(option: Option, schema: z.ZodType): Option {
  if (schema instanceof z.ZodUnion) return fromSchema(option, schema.options[0] as z.ZodType); // x | Infinity
  if (schema instanceof z.ZodEnum) return option.choices(schema.options.map(String));
  if (schema instanceof z.ZodBoolean) return option.argParser(bool);
  if (schema instanceof z.ZodNumber) {
    const min = (schema._zod.def.checks ?? [])
      .map((c) => c._zod.def as { check: string; value?: number; inclusive?: boolean })
      .find((c) => c.check === 'greater_than');
    const lowest = min?.value ?? Number.NEGATIVE_INFINITY;
    return option.argParser(schema.isInt ? int(lowest) : num(lowest, min?.inclusive === false));
  }
  throw new Error(`run options: no flag parser for the schema of ${option.flags}`);
}

/** A flag that sets the RunConfig's `paths` (all of them, to the same value); parser and choices from the first one's schema. */
interface SettingFlag {
  option: Option;
  paths: readonly RunConfigPath[];
}

const setting = (flags: string, help: string, ...paths: [RunConfigPath, ...RunConfigPath[]]): SettingFlag => ({
  option: fromSchema(new Option(flags, help), schemaAt(paths[0])),
  paths,
});

/**
 * The run commands' flags in help order: the settings (each with its RunConfig paths) and the
 * options around them (data, metric, adapter shape, threads, backend).
 */
function runFlags(): Array<SettingFlag | Option> {
  return [
    new Option(
      '--dataset <a9a|PATH>',
      'bundled a9a or digits (8x8 images, 10 classes), fashion-mnist (after `metricopt data fetch fashion-mnist`; 70,000 images pooled to 14x14, split 45:5:10 stratified), or a LIBSVM file (plain or .gz)',
    ).default('a9a'),
    new Option('--features <n>', 'feature count of the LIBSVM file (default: inferred)').argParser(int(1)),
    new Option('--positive-label <v>', 'raw label of the positive class (default: the larger label)').argParser(
      num(Number.NEGATIVE_INFINITY),
    ),
    new Option(
      '--metric <name>',
      'built-in metric: mcr, f1, jaccard, aucpr, balanced-error, top-K-accuracy, aucpr-class-K (one-vs-rest AP of class K); with per-row context: instance-cost, group-balanced-error (needs --group-feature), top5-value',
    ).default('mcr'),
    new Option(
      '--evaluator <module>',
      'user evaluator module (default export { name, direction, evaluate }); overrides --metric; runs in worker threads',
    ),
    new Option(
      '--evaluator-timeout-ms <ms>',
      'limit on one call of the --evaluator module: past it its worker thread is stopped and the call fails with EVALUATOR_TIMEOUT',
    ).default('60000'),
    new Option(
      '--context <file>',
      'per-row context for the evaluator: CSV with a header (a "row" column, then named numeric columns) or JSON lines {"row": i, "name": v}, one per row of the data set (README: evaluator contract)',
    ),
    fromSchema(new Option('--recipe <name>', 'paper (literal) or tuned (default)'), schemaAt('recipe')).default(
      'tuned',
    ),
    fromSchema(new Option('--seed <n>', 'base seed (split, pre-training, trajectories)'), schemaAt('seed')).default(1),
    setting('--tasks <n>', 'meta-training tasks (trajectories)', 'metaTrain.trajectories.tasks'),
    setting(
      '--steps <T>',
      'fine-tuning steps per trajectory and at meta-test',
      'metaTrain.trajectories.steps',
      'metaTest.steps',
    ),
    setting(
      '--queries-per-task <K>',
      'metric observations per trajectory (>= 2, includes t=0 and t=T)',
      'metaTrain.trajectories.queries',
    ),
    setting(
      '--batch-size <n>',
      'mini-batch size of adapter fine-tuning',
      'metaTrain.trajectories.batchSize',
      'metaTest.batchSize',
    ),
    setting(
      '--phi0-std <s>',
      'std of random phi_0 (trajectories, random search, paper meta-test start)',
      'metaTrain.trajectories.phi0Std',
      'metaTest.phi0Std',
    ),
    setting(
      '--optimizer <name>',
      'loss optimiser for trajectories and baselines',
      'metaTrain.trajectories.optimizer',
      'metaTest.lossOptimizer',
    ),
    setting(
      '--loss-lr <lr>',
      'step size of loss-only fine-tuning',
      'metaTrain.trajectories.learningRate',
      'metaTest.lossLearningRate',
    ),
    setting('--labelling <kind>', 'densify observations with a GP or linearly', 'metaTrain.labelling'),
    setting('--training <kind>', 'value-function training: online Reptile or offline', 'metaTrain.training'),
    setting('--standardise <bool>', 'standardise phi and targets (true/false)', 'metaTrain.standardise'),
    setting('--batch-norm <bool>', 'BatchNorm in the value function (true/false)', 'metaTrain.train.batchNorm'),
    setting('--ensemble <n>', 'value-function ensemble members', 'metaTrain.ensemble'),
    setting('--epochs <n>', 'offline value-function training epochs', 'metaTrain.train.epochs'),
    setting(
      '--vf-train-lr <lr>',
      'value-function training step size (Adam offline / inner SGD alpha online)',
      'metaTrain.train.learningRate',
      'metaTrain.train.innerLearningRate',
    ),
    setting('--gamma <g>', 'weight of the regression term in Eq. 2', 'metaTrain.train.gamma'),
    setting('--oe-weight <w>', 'weight of the ordinal-embedding term in Eq. 2', 'metaTrain.train.oeWeight'),
    { option: vfEngineOption(), paths: ['metaTrain.train.engine'] },
    setting('--pretrain-epochs <n>', 'cross-entropy pre-training epochs', 'pretrain.epochs'),
    fromSchema(
      new Option('--architecture <name>', 'backbone (default: convnet for digits, mlp otherwise)'),
      schemaAt('architecture'),
    ),
    new Option(
      '--adapter <kind>',
      'adapter: input dynamic biases (the paper), FiLM, low-rank (input biases + a low-rank input-to-logit term + output bias; binary), or context (input biases + one logit weight per context column + output bias; binary)',
    ).choices(['input-bias', 'film', 'low-rank', 'context']),
    new Option('--adapter-d <d>', 'dimension of the input-bias adapter').argParser(int(1)),
    new Option(
      '--adapter-rank <r>',
      `rank of the low-rank input-to-logit term (default ${DEFAULT_LOGIT_RANK})`,
    ).argParser(int(1)),
    new Option(
      '--output-bias <bool>',
      'input-bias adapter: also one dynamic bias per output logit, the last entries of phi (true/false)',
    ).argParser(bool),
    new Option('--film-layer <i>', 'hidden layer FiLM modulates (d = 2 x its width)').argParser(int(0)),
    new Option(
      '--rare-class <k>',
      'rare-class cell: keep only --rare-keep of class k in the TRAINING rows (validation and test stay natural); pair with --metric aucpr-class-k',
    ).argParser(int(0)),
    new Option('--rare-keep <share>', 'share of the rare class kept in training (default 0.1)').argParser(num(0, true)),
    setting('--meta-test-method <m>', 'how metricopt moves phi', 'metaTest.method'),
    setting(
      '--start <where>',
      "meta-test start: pre-trained point, random phi_0, or the threshold baseline's decision shift in phi's output bias",
      'metaTest.start',
    ),
    setting(
      '--endpoint-rule <rule>',
      'metricopt endpoint: best on the selection rows, or best on their even half confirmed against the start on the odd half',
      'metaTest.endpointRule',
    ),
    setting(
      '--black-box-peers <bool>',
      "also run random_search_total and cma_es with metricopt's total budget of real queries (meta-training included; true/false, default false)",
      'metaTest.blackBoxPeers',
    ),
    new Option(
      '--group-feature <j>',
      'feature column (0-based) whose non-zero rows form group 1 (the context column `group`; a9a: 71, female)',
    ).argParser(int(0)),
    // Checked in buildRunConfig: a probability, and only with --group-feature.
    new Option(
      '--label-noise <rate>',
      'label-noise cell: positive TRAINING rows of group 1 relabelled negative at this rate (needs --group-feature)',
    ).argParser(num(0)),
    setting(
      '--online-queries <n>',
      "metricopt: real queries after the path in a value-function-guided search (VF prior + GP on the real observations, trust region; the black-box peers' budget grows by as many; default 0 = off)",
      'metaTest.onlineQueries',
    ),
    setting(
      '--online-prior <prior>',
      'prior mean of that search: the value function, or none (the GP alone: an ablation)',
      'metaTest.onlinePrior',
    ),
    setting(
      '--online-recheck <m>',
      'of the online queries, how many re-score the best points on the observation rows; the endpoint is the best mean of both halves (default 0)',
      'metaTest.onlineRecheck',
    ),
    setting('--metric-loss-lr <lr>', 'metric-learning baseline step size', 'metaTest.metricLoss.learningRate'),
    setting('--metric-loss-temperature <tau>', 'metric-learning SupCon temperature', 'metaTest.metricLoss.temperature'),
    setting('--vf-lr <lr>', 'step size on the ES direction / value-function gradient', 'metaTest.vfLearningRate'),
    setting('--vf-optimizer <name>', 'optimiser applied to the ES direction / value gradient', 'metaTest.vfOptimizer'),
    setting(
      '--trust-radius <r>',
      'meta-test trust region radius around the start (Infinity = none)',
      'metaTest.trustRadius',
    ),
    setting(
      '--endpoint-queries <n>',
      'real validation queries to pick the metricopt endpoint (0 = last step)',
      'metaTest.endpointQueries',
    ),
    setting(
      '--loss-weight <w>',
      'weight of the loss gradient next to the value-function gradient (Eq. 1; vf-descent)',
      'metaTest.lossWeight',
    ),
    setting(
      '--loss-sampler <kind>',
      "batches of metricopt's loss term: class-balanced or natural frequency",
      'metaTest.lossSampler',
    ),
    setting(
      '--anchor-endpoints <bool>',
      'also offer the start point and the best meta-training observation as metricopt endpoints (true/false)',
      'metaTest.anchorEndpoints',
    ),
    setting('--es-p <P>', 'Guided ES antithetic pairs', 'metaTest.es.P'),
    setting('--es-sigma2 <s2>', 'Guided ES perturbation variance s^2', 'metaTest.es.sigma2'),
    setting('--es-k <k>', 'loss gradients spanning the Guided ES subspace', 'metaTest.es.k'),
    setting(
      '--es-lambda <l>',
      'also score lambda*f + loss in the antithetic differences (0 = f only)',
      'metaTest.es.lambda',
    ),
    new Option(
      '--threads <n>',
      `worker threads for trajectories, metric-query predictions and value-function ensemble members (default: the core count, ${defaultThreads()} here; 1 = all in the main thread); results are the same bits for any count`,
    ).argParser(int(1)),
    backendOption(),
  ];
}

const settings = (): SettingFlag[] => runFlags().filter((f): f is SettingFlag => !(f instanceof Option));

/** The meta-test settings given on the command line (`train` runs no meta-test: it refuses them). */
export function metaTestFlagsGiven(o: RunOptions): string[] {
  return settings()
    .filter(
      ({ option, paths }) => (paths[0] as string).startsWith('metaTest.') && o[option.attributeName()] !== undefined,
    )
    .map(({ option }) => option.long as string);
}

function valueAt(cfg: RunConfig, path: RunConfigPath): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], cfg);
}

function setAt(cfg: RunConfig, path: RunConfigPath, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop() as string;
  const parent = keys.reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, cfg);
  parent[last] = value;
}

/** Options shared by `demo` and `train`: data, metric, recipe and every hyperparameter. */
export function addRunOptions(cmd: Command): Command {
  const p = recipe('paper');
  const t = recipe('tuned');
  // Each setting's default under either recipe, read off the presets.
  const defaults = settings()
    .map(({ option, paths }) => {
      const [path] = paths as [RunConfigPath];
      const [a, b] = [valueAt(p, path), valueAt(t, path)];
      return a === undefined ? undefined : `${option.long} paper ${String(a)}, tuned ${String(b)}`;
    })
    .filter((line) => line !== undefined);
  const outputBias = (c: RunConfig) =>
    c.model.adapter.kind === 'input-bias' ? (c.model.adapter.outputBias ?? false) : false;
  defaults.push(`--output-bias paper ${outputBias(p)}, tuned ${outputBias(t)}`);
  const lines: string[] = [];
  for (let i = 0; i < defaults.length; i += 3) lines.push(`  ${defaults.slice(i, i + 3).join('; ')}`);
  cmd.addHelpText(
    'after',
    [
      '',
      'Defaults that depend on --recipe:',
      ...lines,
      '',
      'Environment: METRICOPT_BACKEND=auto|tensorflow|wasm|cpu|webgpu (default auto), METRICOPT_DEBUG=1 for stack traces.',
    ].join('\n'),
  );
  for (const flag of runFlags()) cmd.addOption(flag instanceof Option ? flag : flag.option);
  return cmd;
}

/**
 * The worker threads of `--threads N` (default: the core count): N - 1 beside the main thread,
 * on the run's data set and backend, or none with --threads 1. The caller closes it.
 */
export function openComputePool(o: RunOptions, dataset: SparseDataset, backend: string): ComputePool | undefined {
  const threads = (o.threads as number | undefined) ?? defaultThreads();
  return threads > 1 ? new WorkerThreadComputePool(threads - 1, dataset, backend) : undefined;
}

export type RunOptions = Record<string, unknown>;

/** The recipe preset with every option given on the command line applied. */
export function buildRunConfig(o: RunOptions, seeds?: number): RunConfig {
  // A copy: the presets share objects with module defaults (defaultMlpConfig).
  const cfg = structuredClone(recipe(o.recipe as 'paper' | 'tuned', o.seed as number));
  if (seeds !== undefined) cfg.seeds = seeds;
  for (const { option, paths } of settings()) {
    const v = o[option.attributeName()];
    if (v !== undefined) for (const path of paths) setAt(cfg, path, v);
  }
  // demo's own settings (cli/commands/demo.ts).
  if (o.replicates !== undefined) cfg.replicates = o.replicates as number;
  if (o.reportSplit !== undefined) cfg.reportSplit = o.reportSplit as RunConfig['reportSplit'];
  // Fetched image sets (Fashion-MNIST): a stratified 45:5:10 split, the pooled ConvNet (d = 128).
  const image = imageRunDefaults(o.dataset as string);
  cfg.architecture =
    (o.architecture as 'mlp' | 'convnet' | undefined) ?? (o.dataset === 'digits' || image ? 'convnet' : 'mlp');
  if (image) {
    cfg.split = image.split;
    if (cfg.architecture === 'convnet') cfg.convnet = image.convnet;
  }
  if (o.rareClass !== undefined) {
    cfg.rareClass = { label: o.rareClass as number, keep: (o.rareKeep as number | undefined) ?? 0.1 };
  }
  if (o.rareKeep !== undefined && (o.rareClass === undefined || (o.rareKeep as number) > 1)) {
    throw new CliError('USAGE', '--rare-keep is a share (0..1] and needs --rare-class');
  }
  if (o.adapter === 'film') {
    cfg.model.adapter = { kind: 'film', layer: (o.filmLayer as number | undefined) ?? cfg.model.hidden.length - 1 };
    // A user mistake: say so before the dataset is loaded (the ConvNet's FiLM has no layer choice).
    const { layer } = cfg.model.adapter;
    if (cfg.architecture === 'mlp' && layer >= cfg.model.hidden.length) {
      throw filmLayerOutOfRange(layer, cfg.model.hidden.length);
    }
  } else if (cfg.model.adapter.kind === 'input-bias') {
    const a = cfg.model.adapter;
    const lowRank = o.adapter === 'low-rank';
    const context = o.adapter === 'context';
    if (o.adapterRank !== undefined && !lowRank) {
      throw new CliError('USAGE', '--adapter-rank is the rank of --adapter low-rank');
    }
    cfg.model.adapter = {
      kind: 'input-bias',
      d: (o.adapterD as number | undefined) ?? a.d,
      // The low-rank and context adapters always carry the output bias (their decision shift).
      outputBias: lowRank || context ? true : ((o.outputBias as boolean | undefined) ?? a.outputBias ?? false),
      ...(lowRank ? { logitRank: (o.adapterRank as number | undefined) ?? DEFAULT_LOGIT_RANK } : {}),
      ...(context ? { logitFeatures: 'context' as const } : {}),
    };
  }
  if (o.labelNoise !== undefined) {
    const v = o.labelNoise as number;
    if (v > 1) throw new CliError('USAGE', `--label-noise ${v} is a probability (0..1)`);
    if (o.groupFeature === undefined) throw new CliError('USAGE', '--label-noise needs --group-feature');
    cfg.labelNoise = v;
  }
  const tr = cfg.metaTrain.trajectories;
  if (tr.queries > tr.steps + 1) {
    throw new CliError('USAGE', `--queries-per-task ${tr.queries} exceeds the ${tr.steps + 1} steps of a trajectory`);
  }
  return cfg;
}

/** --evaluator-timeout-ms as a positive integer (USAGE otherwise). */
function evaluatorTimeoutOf(raw: unknown): number {
  const n = Number(raw ?? '60000');
  if (!Number.isInteger(n) || n <= 0) {
    throw new CliError('USAGE', `--evaluator-timeout-ms must be a positive integer, got '${String(raw)}'`);
  }
  return n;
}

/**
 * Start-up wiring shared by the run commands: backend, data set (with the `--context` file's
 * columns as its `context`, when there is one) and evaluator.
 */
export async function prepareRun(
  o: RunOptions,
): Promise<{ backend: string; dataset: SparseDataset; evaluator: Evaluator }> {
  const preference = (o.backend as BackendPreference | undefined) ?? cliEnv().METRICOPT_BACKEND;
  let evaluator: Evaluator;
  if (o.evaluator) {
    // In worker threads with a deadline: a module that never answers fails with
    // EVALUATOR_TIMEOUT (the run's first call, the probe, stops it) instead of hanging the CLI.
    const loaded = await loadEvaluatorModuleInWorker(o.evaluator as string, {
      deadlineMs: evaluatorTimeoutOf(o.evaluatorTimeoutMs),
    });
    if (!loaded.ok) throw loaded.error;
    evaluator = loaded.value;
  } else {
    const found = builtinEvaluator(o.metric as string);
    if (!found.ok) throw found.error;
    evaluator = found.value;
  }
  // A metric that reads embeddings (recall-at-K, a module with outputs: ['embedding']) gets the
  // model's; a model without an embedding head stops the run at the evaluator probe
  // (MODEL_HAS_NO_EMBEDDINGS), before any query.
  // A job spec's `dataset.dataDir` (cli/commands/train.ts), else METRICOPT_DATA_DIR / .cache/data.
  const loadOptions: { features?: number; positiveLabel?: number; dataDir: string } = {
    dataDir: (o.dataDir as string | undefined) ?? dataDirFromEnv(),
  };
  if (o.features !== undefined) loadOptions.features = o.features as number;
  if (o.positiveLabel !== undefined) loadOptions.positiveLabel = o.positiveLabel as number;
  const ds = await loadDataset(o.dataset as string, loadOptions);
  if (!ds.ok) throw ds.error;
  let dataset = ds.value;
  if (o.context !== undefined) {
    // Read whole before anything runs: a bad file stops the command with nothing written.
    const context = await loadRowContext(o.context as string, dataset.rows);
    if (!context.ok) throw context.error;
    dataset = { ...dataset, context: context.value };
  }
  // Context columns the metric (or the group options) need and the user did not supply,
  // derived by their documented rules (shared/metrics/context-columns.ts).
  dataset = withContextFor(dataset, evaluator, o.groupFeature as number | undefined);
  if (o.rareClass !== undefined && (o.rareClass as number) >= dataset.classes) {
    throw new CliError('USAGE', `--rare-class ${o.rareClass}: '${dataset.name}' has classes 0..${dataset.classes - 1}`);
  }
  let backend: string;
  try {
    backend = (await selectBackend(preference)).name;
  } catch (e) {
    throw new CliError('BACKEND', (e as Error).message);
  }
  return { backend, dataset, evaluator };
}
