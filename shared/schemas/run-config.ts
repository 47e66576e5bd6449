import { z } from 'zod';

/**
 * Every knob of a run, in one schema: `RunConfig` is its type, the recipes
 * (shared/use-cases/training/recipes.ts) are presets of it, a job's `overrides` are a deep
 * partial of its training part (`trainingOverridesSchema` below), and the run commands' flags
 * take their parsers, choices and recipe defaults from it (cli/run-options.ts).
 */

const int = (min: number) => z.number().int().min(min);
const positive = z.number().positive();
const optimizer = z.enum(['sgd', 'adam']);

export const adapterSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('input-bias'),
      d: int(1),
      /** One dynamic bias per output logit as the last entries of phi. */
      outputBias: z.boolean().exactOptional(),
      /** The low-rank input-to-logit term's rank (`--adapter low-rank`; binary tasks); absent = none. */
      logitRank: int(1).exactOptional(),
      /**
       * What the input-to-logit term reads: `random` (absent), `logitRank` fixed random projections
       * of the features; `context` (`--adapter context`), the data set's context columns, one
       * weight each (shared/models/low-rank-logit.ts), logitRank then ignored.
       */
      logitFeatures: z.enum(['random', 'context']).exactOptional(),
    })
    .strict(),
  /** FiLM on hidden layer `layer` (d = 2 x its width). */
  z.object({ kind: z.literal('film'), layer: int(0) }).strict(),
]);

/** The backbone MLP and its adapter. */
export const modelConfigSchema = z
  .object({
    hidden: z.array(int(1)).min(1),
    leakyAlpha: z.number().min(0),
    dropout: z.number().min(0).max(1),
    batchNorm: z.boolean(),
    adapter: adapterSchema,
  })
  .strict();

/** The small ConvNet (shared/models/convnet.ts): FiLM on its second block's channels. */
export const convNetConfigSchema = z
  .object({
    side: int(1),
    channels: z.tuple([int(1), int(1)]),
    leakyAlpha: z.number().min(0),
    /** Pooled blocks; absent: the digits network. */
    pool: z.boolean().exactOptional(),
    /** Factor applied to the pixel values (absent: 1/16, the digits' 0..16 scale). */
    inputScale: positive.exactOptional(),
  })
  .strict();

/** Cross-entropy pre-training. */
export const pretrainConfigSchema = z
  .object({ epochs: int(1), batchSize: int(1), learningRate: positive, seed: int(0) })
  .strict();

/** Meta-training trajectories: loss-only fine-tuning runs from random phi_0. */
export const trajectoryConfigSchema = z
  .object({
    tasks: int(2),
    steps: int(2),
    batchSize: int(1),
    optimizer,
    learningRate: positive,
    /** Std of phi_0 ~ N(0, s^2 I). */
    phi0Std: positive,
    /** Metric observations per task, K >= 2, always including t = 0 and t = T. */
    queries: int(2),
    seed: int(0),
  })
  .strict();

/** Value-function training (shared/method/value-function-training.ts). */
export const valueFunctionTrainConfigSchema = z
  .object({
    engine: z.enum(['f32', 'tfjs']),
    hidden: z.array(int(1)).min(1),
    batchNorm: z.boolean(),
    gamma: z.number().min(0),
    oeWeight: z.number().min(0),
    fisherThreshold: z.number().min(0),
    innerSteps: int(1),
    innerLearningRate: positive,
    eta0: positive,
    epochs: int(1),
    taskBatch: int(1),
    learningRate: positive,
    finalLearningRateFraction: z.number().gt(0).max(1),
    seed: int(0),
  })
  .strict();

/** Meta-training's settings (without the run's checkpoint and job ids). */
export const metaTrainConfigSchema = z
  .object({
    /** 'gp' (default) or 'linear' interpolation of the sparse observations. */
    labelling: z.enum(['gp', 'linear']),
    /** Fraction of tasks held out to measure the value function (health figure). */
    heldOutFraction: z.number().gt(0).lt(1),
    ensemble: int(1),
    /** Standardise phi and targets with meta-training statistics (tuned) or use raw values (paper). */
    standardise: z.boolean(),
    /** 'online' Reptile (paper) or 'offline' training over all stored tasks (tuned). */
    training: z.enum(['online', 'offline']),
    /** Train on every `trainStride`-th step of each trajectory (1 = all). */
    trainStride: int(1),
    trajectories: trajectoryConfigSchema,
    train: valueFunctionTrainConfigSchema,
    recipe: z.enum(['paper', 'tuned']),
  })
  .strict();

/** Meta-test: how metricopt moves phi and picks its endpoint (shared/use-cases/training/meta-test.ts). */
export const metaTestConfigSchema = z
  .object({
    steps: int(2),
    batchSize: int(1),
    lossOptimizer: optimizer,
    lossLearningRate: positive,
    start: z.enum(['zero', 'random', 'decision-shift']),
    phi0Std: positive,
    method: z.enum(['guided-es', 'vf-descent']),
    es: z.object({ P: int(1), sigma2: positive, k: int(0), lambda: z.number().min(0) }).strict(),
    vfOptimizer: optimizer,
    vfLearningRate: positive,
    /** Infinity = no trust region. */
    trustRadius: positive.or(z.literal(Number.POSITIVE_INFINITY)),
    endpointQueries: int(0),
    lossWeight: z.number().min(0),
    lossSampler: z.enum(['balanced', 'natural']),
    anchorEndpoints: z.boolean(),
    minRandomSearch: int(0),
    endpointRule: z.enum(['best', 'confirm']).exactOptional(),
    blackBoxPeers: z.boolean().exactOptional(),
    /** Real queries after the path in a value-function-guided search (0 or absent = off). */
    onlineQueries: int(0).exactOptional(),
    /** That search's prior mean: the value function, or none (the GP alone). */
    onlinePrior: z.enum(['value-function', 'none']).exactOptional(),
    /** Of the online queries, how many re-score the best points on the observation rows. */
    onlineRecheck: int(0).exactOptional(),
    /** The metric-learning baseline's step size and temperature (metrics of the embeddings; absent: the defaults). */
    metricLoss: z.object({ learningRate: positive, temperature: positive }).strict().exactOptional(),
  })
  .strict();

export const runConfigSchema = z
  .object({
    recipe: z.enum(['paper', 'tuned']),
    seed: int(0),
    /** Meta-test seeds (each a full meta-test of every method) within a replicate. */
    seeds: int(1),
    /** Whole pipelines at base seeds seed, seed + 1000, ...; compared by paired differences. */
    replicates: int(1),
    /** Where reported numbers come from: the test split, or rows held out of training. */
    reportSplit: z.enum(['test', 'train-holdout']),
    /** 'separate': meta-training and meta-test's choices use different validation halves. */
    selectionSplit: z.enum(['separate', 'shared']),
    architecture: z.enum(['mlp', 'convnet']),
    /** The ConvNet's shape (absent: the digits network at the images' side). */
    convnet: convNetConfigSchema.exactOptional(),
    /**
     * How rows are split: absent, a seeded random 70/10/20; `stratified`, each class cut by
     * `fractions` (train, validation, test), as the image runs do (45:5:10, the paper's shape).
     */
    split: z
      .object({ kind: z.literal('stratified'), fractions: z.tuple([positive, positive, positive]) })
      .strict()
      .exactOptional(),
    /**
     * The rare-class cell: only a seeded `keep` share of this class's TRAINING rows is kept
     * (pre-training and fine-tuning see it rare); validation and test keep the natural rate.
     */
    rareClass: z
      .object({ label: int(0), keep: z.number().gt(0).max(1) })
      .strict()
      .exactOptional(),
    model: modelConfigSchema,
    pretrain: pretrainConfigSchema,
    metaTrain: metaTrainConfigSchema,
    metaTest: metaTestConfigSchema,
    /** Label-noise cell: positive TRAINING rows of group 1 relabelled negative at this rate. */
    labelNoise: z.number().min(0).max(1).exactOptional(),
  })
  .strict();
export type RunConfig = z.infer<typeof runConfigSchema>;

/**
 * A job's overrides: the training part of `RunConfig` (no meta-test, no recipe name), every
 * section partial and merged over the recipe's; the adapter is replaced whole (`--adapter
 * low-rank` is `{"kind": "input-bias", "d": 16, "outputBias": true, "logitRank": 32}`, `--adapter context`
 * `{"kind": "input-bias", "d": 16, "outputBias": true, "logitFeatures": "context"}`).
 */
export const trainingOverridesSchema = z
  .object({
    architecture: runConfigSchema.shape.architecture,
    selectionSplit: runConfigSchema.shape.selectionSplit,
    reportSplit: runConfigSchema.shape.reportSplit,
    /** The rare-class cell (`--rare-class K --rare-keep F`): class K kept at share F of its training rows. */
    rareClass: runConfigSchema.shape.rareClass,
    model: modelConfigSchema.partial(),
    pretrain: pretrainConfigSchema.partial(),
    metaTrain: metaTrainConfigSchema
      .omit({ recipe: true })
      .extend({ trajectories: trajectoryConfigSchema.partial(), train: valueFunctionTrainConfigSchema.partial() })
      .partial(),
    /** The label-noise cell (`--label-noise`): needs a group column, e.g. the job's dataset.groupFeature. */
    labelNoise: z.number().min(0).max(1),
  })
  .strict()
  .partial();
export type TrainingOverrides = z.infer<typeof trainingOverridesSchema>;
