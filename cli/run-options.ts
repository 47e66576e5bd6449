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
import { withDerivedContext } from '../shared/metrics/context-columns.js';
import { requiredContext } from '../shared/metrics/context-metrics.js';
import { filmLayerOutOfRange } from '../shared/models/mlp.js';
import { loadEvaluatorModuleInWorker } from '../shared/adapters/evaluator-module.worker-thread.js';
import { imageRunDefaults, type RunConfig, recipe } from '../shared/use-cases/training/recipes.js';
import { CliError } from './errors.js';
import { dataDirFromEnv } from './locations.js';
import { backendOption, bool, int, num, vfEngineOption } from './option-parsers.js';

/** Rank of `--adapter low-rank` unless --adapter-rank says otherwise. */
export const DEFAULT_LOGIT_RANK = 32;

/** Options shared by `demo` and `train`: data, metric, recipe and every hyperparameter. */
export function addRunOptions(cmd: Command): Command {
  const p = recipe('paper');
  const t = recipe('tuned');
  const both = (f: (c: RunConfig) => unknown) => `paper ${String(f(p))}, tuned ${String(f(t))}`;
  cmd.addHelpText(
    'after',
    [
      '',
      'Defaults that depend on --recipe:',
      `  --tasks ${both((c) => c.metaTrain.trajectories.tasks)}; --steps ${both((c) => c.metaTrain.trajectories.steps)}; --queries-per-task ${both((c) => c.metaTrain.trajectories.queries)}`,
      `  --batch-size ${both((c) => c.metaTrain.trajectories.batchSize)}; --optimizer ${both((c) => c.metaTrain.trajectories.optimizer)}; --loss-lr ${both((c) => c.metaTrain.trajectories.learningRate)}; --phi0-std ${both((c) => c.metaTrain.trajectories.phi0Std)}`,
      `  --training ${both((c) => c.metaTrain.training)}; --standardise ${both((c) => c.metaTrain.standardise)}; --batch-norm ${both((c) => c.metaTrain.train.batchNorm)}; --ensemble ${both((c) => c.metaTrain.ensemble)}`,
      `  --epochs ${both((c) => c.metaTrain.train.epochs)}; --vf-train-lr ${both((c) => (c.metaTrain.training === 'online' ? c.metaTrain.train.innerLearningRate : c.metaTrain.train.learningRate))}; --gamma ${both((c) => c.metaTrain.train.gamma)}; --oe-weight ${both((c) => c.metaTrain.train.oeWeight)}`,
      `  --start ${both((c) => c.metaTest.start)}; --meta-test-method ${both((c) => c.metaTest.method)}; --vf-lr ${both((c) => c.metaTest.vfLearningRate)}; --trust-radius ${both((c) => c.metaTest.trustRadius)}; --endpoint-queries ${both((c) => c.metaTest.endpointQueries)}`,
      `  --output-bias ${both((c) => (c.model.adapter.kind === 'input-bias' ? (c.model.adapter.outputBias ?? false) : false))}`,
      `  --loss-weight ${both((c) => c.metaTest.lossWeight)}; --loss-sampler ${both((c) => c.metaTest.lossSampler)}; --anchor-endpoints ${both((c) => c.metaTest.anchorEndpoints)}`,
      `  --es-p ${both((c) => c.metaTest.es.P)}; --es-sigma2 ${both((c) => c.metaTest.es.sigma2)}; --es-k ${both((c) => c.metaTest.es.k)}; --es-lambda ${both((c) => c.metaTest.es.lambda)}; --pretrain-epochs ${both((c) => c.pretrain.epochs)}`,
      '',
      'Environment: METRICOPT_BACKEND=auto|tensorflow|wasm|cpu|webgpu (default auto), METRICOPT_DEBUG=1 for stack traces.',
    ].join('\n'),
  );
  return cmd
    .option(
      '--dataset <a9a|PATH>',
      'bundled a9a or digits (8x8 images, 10 classes), fashion-mnist (after `metricopt data fetch fashion-mnist`; 70,000 images pooled to 14x14, split 45:5:10 stratified), or a LIBSVM file (plain or .gz)',
      'a9a',
    )
    .option('--features <n>', 'feature count of the LIBSVM file (default: inferred)', int(1))
    .option(
      '--positive-label <v>',
      'raw label of the positive class (default: the larger label)',
      num(Number.NEGATIVE_INFINITY),
    )
    .option(
      '--metric <name>',
      'built-in metric: mcr, f1, jaccard, aucpr, balanced-error, top-K-accuracy, aucpr-class-K (one-vs-rest AP of class K); with per-row context: instance-cost, group-balanced-error (needs --group-feature), top5-value',
      'mcr',
    )
    .option(
      '--evaluator <module>',
      'user evaluator module (default export { name, direction, evaluate }); overrides --metric; runs in worker threads',
    )
    .option(
      '--evaluator-timeout-ms <ms>',
      'limit on one call of the --evaluator module: past it its worker thread is stopped and the call fails with EVALUATOR_TIMEOUT',
      '60000',
    )
    .option(
      '--context <file>',
      'per-row context for the evaluator: CSV with a header (a "row" column, then named numeric columns) or JSON lines {"row": i, "name": v}, one per row of the data set (README: evaluator contract)',
    )
    .addOption(
      new Option('--recipe <name>', 'paper (literal) or tuned (default)').choices(['paper', 'tuned']).default('tuned'),
    )
    .option('--seed <n>', 'base seed (split, pre-training, trajectories)', int(0), 1)
    .option('--tasks <n>', 'meta-training tasks (trajectories)', int(2))
    .option('--steps <T>', 'fine-tuning steps per trajectory and at meta-test', int(2))
    .option('--queries-per-task <K>', 'metric observations per trajectory (>= 2, includes t=0 and t=T)', int(2))
    .option('--batch-size <n>', 'mini-batch size of adapter fine-tuning', int(1))
    .option('--phi0-std <s>', 'std of random phi_0 (trajectories, random search, paper meta-test start)', num(0, true))
    .addOption(
      new Option('--optimizer <name>', 'loss optimiser for trajectories and baselines').choices(['sgd', 'adam']),
    )
    .option('--loss-lr <lr>', 'step size of loss-only fine-tuning', num(0, true))
    .addOption(new Option('--labelling <kind>', 'densify observations with a GP or linearly').choices(['gp', 'linear']))
    .addOption(
      new Option('--training <kind>', 'value-function training: online Reptile or offline').choices([
        'online',
        'offline',
      ]),
    )
    .option('--standardise <bool>', 'standardise phi and targets (true/false)', bool)
    .option('--batch-norm <bool>', 'BatchNorm in the value function (true/false)', bool)
    .option('--ensemble <n>', 'value-function ensemble members', int(1))
    .option('--epochs <n>', 'offline value-function training epochs', int(1))
    .option(
      '--vf-train-lr <lr>',
      'value-function training step size (Adam offline / inner SGD alpha online)',
      num(0, true),
    )
    .option('--gamma <g>', 'weight of the regression term in Eq. 2', num(0))
    .option('--oe-weight <w>', 'weight of the ordinal-embedding term in Eq. 2', num(0))
    .addOption(vfEngineOption())
    .option('--pretrain-epochs <n>', 'cross-entropy pre-training epochs', int(1))
    .addOption(
      new Option('--architecture <name>', 'backbone (default: convnet for digits, mlp otherwise)').choices([
        'mlp',
        'convnet',
      ]),
    )
    .addOption(
      new Option(
        '--adapter <kind>',
        'adapter: input dynamic biases (the paper), FiLM, or low-rank (input biases + a low-rank input-to-logit term + output bias; binary)',
      ).choices(['input-bias', 'film', 'low-rank']),
    )
    .option('--adapter-d <d>', 'dimension of the input-bias adapter', int(1))
    .option('--adapter-rank <r>', `rank of the low-rank input-to-logit term (default ${DEFAULT_LOGIT_RANK})`, int(1))
    .option(
      '--output-bias <bool>',
      'input-bias adapter: also one dynamic bias per output logit, the last entries of phi (true/false)',
      bool,
    )
    .option('--film-layer <i>', 'hidden layer FiLM modulates (d = 2 x its width)', int(0))
    .option(
      '--rare-class <k>',
      'rare-class cell: keep only --rare-keep of class k in the TRAINING rows (validation and test stay natural); pair with --metric aucpr-class-k',
      int(0),
    )
    .option('--rare-keep <share>', 'share of the rare class kept in training (default 0.1)', num(0, true))
    .addOption(new Option('--meta-test-method <m>', 'how metricopt moves phi').choices(['guided-es', 'vf-descent']))
    .addOption(
      new Option(
        '--start <where>',
        "meta-test start: pre-trained point, random phi_0, or the threshold baseline's decision shift in phi's output bias",
      ).choices(['zero', 'random', 'decision-shift']),
    )
    .addOption(
      new Option(
        '--endpoint-rule <rule>',
        'metricopt endpoint: best on the selection rows, or best on their even half confirmed against the start on the odd half',
      ).choices(['best', 'confirm']),
    )
    .option(
      '--black-box-peers <bool>',
      "also run random_search_total and cma_es with metricopt's total budget of real queries (meta-training included; true/false, default false)",
      bool,
    )
    .option(
      '--group-feature <j>',
      'feature column (0-based) whose non-zero rows form group 1 (the context column `group`; a9a: 71, female)',
      int(0),
    )
    .option(
      '--label-noise <rate>',
      'label-noise cell: positive TRAINING rows of group 1 relabelled negative at this rate (needs --group-feature)',
      num(0),
    )
    .option(
      '--online-queries <n>',
      "metricopt: real queries after the path in a value-function-guided search (VF prior + GP on the real observations, trust region; the black-box peers' budget grows by as many; default 0 = off)",
      int(0),
    )
    .addOption(
      new Option(
        '--online-prior <prior>',
        'prior mean of that search: the value function, or none (the GP alone: an ablation)',
      ).choices(['value-function', 'none']),
    )
    .option(
      '--online-recheck <m>',
      'of the online queries, how many re-score the best points on the observation rows; the endpoint is the best mean of both halves (default 0)',
      int(0),
    )
    .option('--vf-lr <lr>', 'step size on the ES direction / value-function gradient', num(0, true))
    .addOption(
      new Option('--vf-optimizer <name>', 'optimiser applied to the ES direction / value gradient').choices([
        'sgd',
        'adam',
      ]),
    )
    .option('--trust-radius <r>', 'meta-test trust region radius around the start (Infinity = none)', num(0, true))
    .option('--endpoint-queries <n>', 'real validation queries to pick the metricopt endpoint (0 = last step)', int(0))
    .option(
      '--loss-weight <w>',
      'weight of the loss gradient next to the value-function gradient (Eq. 1; vf-descent)',
      num(0),
    )
    .addOption(
      new Option(
        '--loss-sampler <kind>',
        "batches of metricopt's loss term: class-balanced or natural frequency",
      ).choices(['balanced', 'natural']),
    )
    .option(
      '--anchor-endpoints <bool>',
      'also offer the start point and the best meta-training observation as metricopt endpoints (true/false)',
      bool,
    )
    .option('--es-p <P>', 'Guided ES antithetic pairs', int(1))
    .option('--es-sigma2 <s2>', 'Guided ES perturbation variance s^2', num(0, true))
    .option('--es-k <k>', 'loss gradients spanning the Guided ES subspace', int(0))
    .option('--es-lambda <l>', 'also score lambda*f + loss in the antithetic differences (0 = f only)', num(0))
    .option(
      '--threads <n>',
      `worker threads for trajectories, metric-query predictions and value-function ensemble members (default: the core count, ${defaultThreads()} here; 1 = all in the main thread); results are the same bits for any count`,
      int(1),
    )
    .addOption(backendOption());
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
  const cfg = recipe(o.recipe as 'paper' | 'tuned', o.seed as number);
  const mt = cfg.metaTrain;
  const tr = mt.trajectories;
  const test = cfg.metaTest;
  const set = <T>(v: unknown, apply: (x: T) => void) => {
    if (v !== undefined) apply(v as T);
  };
  if (seeds !== undefined) cfg.seeds = seeds;
  set<number>(o.tasks, (v) => (tr.tasks = v));
  set<number>(o.steps, (v) => {
    tr.steps = v;
    test.steps = v;
  });
  set<number>(o.queriesPerTask, (v) => (tr.queries = v));
  set<number>(o.batchSize, (v) => {
    tr.batchSize = v;
    test.batchSize = v;
  });
  set<number>(o.phi0Std, (v) => {
    tr.phi0Std = v;
    test.phi0Std = v;
  });
  set<'sgd' | 'adam'>(o.optimizer, (v) => {
    tr.optimizer = v;
    test.lossOptimizer = v;
  });
  set<number>(o.lossLr, (v) => {
    tr.learningRate = v;
    test.lossLearningRate = v;
  });
  set<'gp' | 'linear'>(o.labelling, (v) => (mt.labelling = v));
  set<'online' | 'offline'>(o.training, (v) => (mt.training = v));
  set<boolean>(o.standardise, (v) => (mt.standardise = v));
  set<boolean>(o.batchNorm, (v) => (mt.train = { ...mt.train, batchNorm: v }));
  set<number>(o.ensemble, (v) => (mt.ensemble = v));
  set<number>(o.epochs, (v) => (mt.train = { ...mt.train, epochs: v }));
  set<number>(o.vfTrainLr, (v) => (mt.train = { ...mt.train, learningRate: v, innerLearningRate: v }));
  set<number>(o.gamma, (v) => (mt.train = { ...mt.train, gamma: v }));
  set<number>(o.oeWeight, (v) => (mt.train = { ...mt.train, oeWeight: v }));
  set<'f32' | 'tfjs'>(o.vfEngine, (v) => (mt.train = { ...mt.train, engine: v }));
  set<number>(o.pretrainEpochs, (v) => (cfg.pretrain = { ...cfg.pretrain, epochs: v }));
  // Fetched image sets (Fashion-MNIST): a stratified 45:5:10 split, the pooled ConvNet (d = 128).
  const image = imageRunDefaults(o.dataset as string);
  cfg.architecture =
    (o.architecture as 'mlp' | 'convnet' | undefined) ?? (o.dataset === 'digits' || image ? 'convnet' : 'mlp');
  if (image) {
    cfg.split = image.split;
    if (cfg.architecture === 'convnet') cfg.convnet = image.convnet;
  }
  set<number>(o.rareClass, (v) => (cfg.rareClass = { label: v, keep: (o.rareKeep as number | undefined) ?? 0.1 }));
  if (o.rareKeep !== undefined && (o.rareClass === undefined || (o.rareKeep as number) > 1)) {
    throw new CliError('USAGE', '--rare-keep is a share (0..1] and needs --rare-class');
  }
  if (o.adapter === 'film') {
    cfg.model = {
      ...cfg.model,
      adapter: { kind: 'film', layer: (o.filmLayer as number | undefined) ?? cfg.model.hidden.length - 1 },
    };
    // A user mistake: say so before the dataset is loaded (the ConvNet's FiLM has no layer choice).
    const { layer } = cfg.model.adapter as { layer: number };
    if (cfg.architecture === 'mlp' && layer >= cfg.model.hidden.length) {
      throw filmLayerOutOfRange(layer, cfg.model.hidden.length);
    }
  } else if (cfg.model.adapter.kind === 'input-bias') {
    const a = cfg.model.adapter;
    const lowRank = o.adapter === 'low-rank';
    cfg.model = {
      ...cfg.model,
      adapter: {
        kind: 'input-bias',
        d: (o.adapterD as number | undefined) ?? a.d,
        // The low-rank adapter always carries the output bias (its decision shift).
        outputBias: lowRank ? true : ((o.outputBias as boolean | undefined) ?? a.outputBias ?? false),
        ...(lowRank ? { logitRank: (o.adapterRank as number | undefined) ?? DEFAULT_LOGIT_RANK } : {}),
      },
    };
  }
  set<string>(o.endpointRule, (v) => (test.endpointRule = v as 'best' | 'confirm'));
  set<boolean>(o.blackBoxPeers, (v) => (test.blackBoxPeers = v));
  set<number>(o.onlineQueries, (v) => (test.onlineQueries = v));
  set<'value-function' | 'none'>(o.onlinePrior, (v) => (test.onlinePrior = v));
  set<number>(o.onlineRecheck, (v) => (test.onlineRecheck = v));
  set<number>(o.labelNoise, (v) => {
    if (v > 1) throw new CliError('USAGE', `--label-noise ${v} is a probability (0..1)`);
    if (o.groupFeature === undefined) throw new CliError('USAGE', '--label-noise needs --group-feature');
    cfg.labelNoise = v;
  });
  set<'guided-es' | 'vf-descent'>(o.metaTestMethod, (v) => (test.method = v));
  set<'zero' | 'random' | 'decision-shift'>(o.start, (v) => (test.start = v));
  set<number>(o.vfLr, (v) => (test.vfLearningRate = v));
  set<'sgd' | 'adam'>(o.vfOptimizer, (v) => (test.vfOptimizer = v));
  set<number>(o.trustRadius, (v) => (test.trustRadius = v));
  set<number>(o.endpointQueries, (v) => (test.endpointQueries = v));
  set<number>(o.lossWeight, (v) => (test.lossWeight = v));
  set<'balanced' | 'natural'>(o.lossSampler, (v) => (test.lossSampler = v));
  set<boolean>(o.anchorEndpoints, (v) => (test.anchorEndpoints = v));
  set<number>(o.replicates, (v) => (cfg.replicates = v));
  set<'test' | 'train-holdout'>(o.reportSplit, (v) => (cfg.reportSplit = v));
  set<number>(o.esP, (v) => (test.es = { ...test.es, P: v }));
  set<number>(o.esSigma2, (v) => (test.es = { ...test.es, sigma2: v }));
  set<number>(o.esK, (v) => (test.es = { ...test.es, k: v }));
  set<number>(o.esLambda, (v) => (test.es = { ...test.es, lambda: v }));
  if (tr.queries > tr.steps + 1) {
    throw new CliError('USAGE', `--queries-per-task ${tr.queries} exceeds the ${tr.steps + 1} steps of a trajectory`);
  }
  return cfg;
}

const envSchema = z.object({
  METRICOPT_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu']).default('auto'),
});

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
  const env = envSchema.safeParse(process.env);
  if (!env.success) {
    throw new CliError('CONFIG', `METRICOPT_BACKEND must be one of auto, tensorflow, wasm, cpu, webgpu`);
  }
  const preference = (o.backend as BackendPreference | undefined) ?? env.data.METRICOPT_BACKEND;
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
  if (evaluator.outputs?.includes('embedding')) {
    // The evaluator contract carries embeddings (recall-at-K, user modules that ask for them);
    // meta-training and meta-test still score probabilities only (issue 24, item 4: partial).
    throw new CliError(
      'METRIC_NEEDS_EMBEDDINGS',
      `${evaluator.name} reads embeddings; demo and train runs score class probabilities only so far`,
    );
  }
  const loadOptions: { features?: number; positiveLabel?: number; dataDir: string } = { dataDir: dataDirFromEnv() };
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
  const columns = [...requiredContext(evaluator), ...(o.groupFeature !== undefined ? ['group'] : [])];
  if (columns.length > 0) dataset = withDerivedContext(dataset, columns, o.groupFeature as number | undefined);
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
