import * as tf from '@tensorflow/tfjs';
import type { ProgressReporter } from '../ports/progress.port.js';
import type { DenseLayer } from '../schemas/checkpoint.js';
import { Rng } from '../util/random.js';
import { BatchedOptimizer } from './optimizers.js';
import { reptileEta, reptileInterpolate } from './reptile.js';
import { defaultHidden, ValueFunctionNet } from './value-function.js';
import { type PackedBatch, ValueFunctionNetF32 } from './value-function-net-f32.js';
import {
  type FisherMasks,
  fisherMasks,
  selectHardPairs,
  type TaskLabels,
  valueFunctionLoss,
} from './value-function-loss.js';

/** One labelled trajectory, in the value function's own (possibly standardised) units. */
export interface LabelledTask {
  /** [T1 x d] inputs phi_0..phi_T. */
  x: Float32Array;
  labels: TaskLabels;
  masks: FisherMasks;
}

/**
 * Where training runs: 'f32', plain typed-array kernels (value-function-net-f32.ts, the default,
 * the same dense kernels serving uses), or 'tfjs', the reference implementation (tfjs autodiff
 * and optimisers on the selected tfjs backend). Same seed, same initial weights, results equal
 * within float32 rounding (test/core/value-function-training.test.ts); checkpoints are alike.
 */
export type TrainingEngine = 'f32' | 'tfjs';

export interface ValueFunctionTrainConfig {
  engine: TrainingEngine;
  hidden: number[];
  batchNorm: boolean;
  gamma: number;
  oeWeight: number;
  fisherThreshold: number;
  /** Online Reptile (paper): inner SGD steps per task, inner step size, initial outer step. */
  innerSteps: number;
  innerLearningRate: number;
  eta0: number;
  /** Offline training (tuned): Adam epochs over all tasks, tasks per batch, step size. */
  epochs: number;
  taskBatch: number;
  learningRate: number;
  /** Offline: final step size as a fraction of the first (linear decay over the run; 1 = constant). */
  finalLearningRateFraction: number;
  seed: number;
}

export const paperTrainDefaults: ValueFunctionTrainConfig = {
  engine: 'f32',
  hidden: defaultHidden,
  batchNorm: true,
  gamma: 10,
  oeWeight: 1,
  fisherThreshold: 2,
  innerSteps: 1,
  innerLearningRate: 0.005,
  eta0: 1,
  epochs: 1,
  taskBatch: 1,
  learningRate: 0.005,
  finalLearningRateFraction: 1,
  seed: 7,
};

/**
 * Measured on A9A/MCR (bench/RESULTS.md): 60 epochs with a decaying step size generalise best
 * (150 epochs overfit); the ordinal-embedding term cost twice the time and did not help held-out
 * Spearman (0.58 with it, 0.61 without), so the tuned recipe leaves it at weight 0.
 */
export const tunedTrainDefaults: ValueFunctionTrainConfig = {
  ...paperTrainDefaults,
  batchNorm: false,
  oeWeight: 0,
  epochs: 60,
  taskBatch: 64,
  learningRate: 1e-2,
  finalLearningRateFraction: 0.05,
};

export function labelTask(x: Float32Array, mean: Float32Array, std: Float32Array, threshold: number): LabelledTask {
  const labels = { mean, std };
  return { x, labels, masks: fisherMasks(labels, threshold) };
}

/**
 * Tasks of one step packed task-major (all tasks have the same number of rows), into the arrays
 * of `reuse` when it has the same shape (a training loop's previous batch).
 */
export function packBatch(tasks: LabelledTask[], d: number, reuse?: PackedBatch): PackedBatch {
  const B = tasks.length;
  const T1 = (tasks[0] as LabelledTask).labels.mean.length;
  const same = reuse !== undefined && reuse.B === B && reuse.T1 === T1 && reuse.x.length === B * T1 * d;
  const x = same ? reuse.x : new Float32Array(B * T1 * d);
  const mean = same ? reuse.mean : new Float32Array(B * T1);
  const std = same ? reuse.std : new Float32Array(B * T1);
  for (let i = 0; i < B; i++) {
    const t = tasks[i] as LabelledTask;
    x.set(t.x, i * T1 * d);
    mean.set(t.labels.mean, i * T1);
    std.set(t.labels.std, i * T1);
  }
  return { B, T1, x, mean, std, masks: tasks.map((t) => t.masks) };
}

/** Mean task loss of a batch as a scalar on the tfjs net (inside a tidy / gradient scope). */
export function batchLoss(
  net: ValueFunctionNet,
  p: PackedBatch,
  d: number,
  cfg: ValueFunctionTrainConfig,
  stats?: tf.Tensor[],
): tf.Scalar {
  const x = tf.tensor2d(p.x, [p.B * p.T1, d]);
  const training = stats !== undefined;
  // Hard mining on the current embeddings (no gradient through the selection).
  const pairs =
    cfg.oeWeight === 0
      ? { posIndex: new Int32Array(0), negIndex: new Int32Array(0), valid: new Float32Array(0) }
      : tf.tidy(() => {
          const emb = net.forward(x, training).embedding;
          return selectHardPairs(emb.dataSync() as Float32Array, emb.shape[1] as number, p.masks, p.T1);
        });
  const { out, embedding } = net.forward(x, training, stats);
  const loss = valueFunctionLoss(
    {
      out: tf.reshape(out, [p.B, p.T1]),
      embedding,
      mean: tf.tensor2d(p.mean, [p.B, p.T1]),
      std: tf.tensor2d(p.std, [p.B, p.T1]),
      ...pairs,
    },
    cfg.gamma,
    cfg.oeWeight,
  );
  return tf.mean(loss.total) as tf.Scalar;
}

/** Lets a long fit be stopped between steps (SIGTERM in a training job); see `FitStopped`. */
export interface FitControl {
  stopRequested(): boolean;
}

/** Thrown by a fit whose control asked it to stop; nothing of the fit is kept (it is re-run, deterministically). */
export class FitStopped extends Error {
  constructor() {
    super('value-function fit stopped on request');
    this.name = 'FitStopped';
  }
}

/**
 * With a control: yields to the event loop about every 20 ms (so a signal handler can run) and
 * throws FitStopped once a stop is requested. Without one the fit runs straight through.
 */
function yielder(control: FitControl | undefined, cleanUp: () => void): () => Promise<void> {
  if (control === undefined) return async () => undefined;
  let last = performance.now();
  return async () => {
    if (performance.now() - last < 20) return;
    await new Promise<void>((r) => setImmediate(r));
    last = performance.now();
    if (control.stopRequested()) {
      cleanUp();
      throw new FitStopped();
    }
  };
}

/** A trained value-function net: its checkpoint layers (BatchNorm folded in). */
export interface TrainedValueFunction {
  toLayers(): DenseLayer[];
  /** Frees what the engine holds (tfjs variables); a no-op for the f32 engine. */
  dispose(): void;
}

/** A net and its optimiser on one engine: what the training loops below drive. */
interface Learner extends TrainedValueFunction {
  /** One optimiser step on the mean task loss of the batch of tasks, at step size learningRate. */
  step(tasks: LabelledTask[], learningRate: number): void;
  /** All trainable values (for Reptile's interpolation). */
  snapshot(): Float32Array[];
  restore(values: Float32Array[]): void;
}

function learner(d: number, cfg: ValueFunctionTrainConfig, optimizer: 'sgd' | 'adam'): Learner {
  const arch = { d, hidden: cfg.hidden, batchNorm: cfg.batchNorm };
  return cfg.engine === 'tfjs' ? tfjsLearner(arch, cfg, optimizer) : f32Learner(arch, cfg, optimizer);
}

function f32Learner(
  arch: ValueFunctionNetF32['arch'],
  cfg: ValueFunctionTrainConfig,
  optimizer: 'sgd' | 'adam',
): Learner {
  const net = new ValueFunctionNetF32(arch, cfg.seed);
  const sgd = optimizer === 'sgd' ? new BatchedOptimizer('sgd', cfg.innerLearningRate, net.params.length) : undefined;
  let batch: PackedBatch | undefined;
  return {
    step(tasks, learningRate) {
      batch = packBatch(tasks, arch.d, batch);
      net.lossAndGradient(batch, cfg.gamma, cfg.oeWeight);
      if (sgd) {
        sgd.learningRate = learningRate;
        sgd.step(net.params, net.grads);
        net.paramsChanged();
      } else net.adamStep(learningRate, 0.9, 0.999, 1e-7); // tfjs's Adam defaults (epsilon: the float32 backends')
      if (cfg.batchNorm) net.updateRunningStats();
    },
    snapshot: () => [net.params.slice()],
    restore(values) {
      net.params.set(values[0] as Float32Array);
      net.paramsChanged();
    },
    toLayers: () => net.toLayers(),
    dispose: () => undefined,
  };
}

function tfjsLearner(
  arch: ValueFunctionNetF32['arch'],
  cfg: ValueFunctionTrainConfig,
  optimizer: 'sgd' | 'adam',
): Learner {
  const net = new ValueFunctionNet(arch, cfg.seed);
  const sgd = optimizer === 'sgd' ? tf.train.sgd(cfg.innerLearningRate) : undefined;
  const opt = sgd ?? tf.train.adam(cfg.learningRate);
  return {
    step(tasks, learningRate) {
      const batch = packBatch(tasks, arch.d);
      // Adam reads the step size on every update (changing it keeps the moments); SGD keeps a scalar of it.
      if (sgd && learningRate !== sgd.getConfig().learningRate) sgd.setLearningRate(learningRate);
      else if (!sgd) (opt as unknown as { learningRate: number }).learningRate = learningRate;
      const stats: tf.Tensor[] | undefined = cfg.batchNorm ? [] : undefined;
      tf.tidy(() => {
        opt.minimize(() => batchLoss(net, batch, arch.d, cfg, stats), false, net.variables);
      });
      if (stats) net.updateRunningStats(stats);
    },
    snapshot: () => net.snapshot(),
    restore: (values) => net.restore(values),
    toLayers: () => net.toLayers(),
    dispose() {
      opt.dispose();
      net.dispose();
    },
  };
}

/**
 * The paper's recipe: online Reptile. For each task in turn, `innerSteps` SGD steps of size
 * alpha on that task's loss give w~, then w <- w + eta (w~ - w), eta decayed linearly to 0.
 */
export async function trainReptileOnline(
  tasks: LabelledTask[],
  d: number,
  cfg: ValueFunctionTrainConfig,
  progress: ProgressReporter,
  control?: FitControl,
): Promise<TrainedValueFunction> {
  const net = learner(d, cfg, 'sgd');
  const order = new Rng(cfg.seed + 1).shuffle(tasks.map((_, i) => i));
  const pause = yielder(control, () => {
    net.dispose();
    progress.end('stopped');
  });
  progress.start('meta-train value function (online Reptile)', order.length);
  for (const [k, ti] of order.entries()) {
    await pause();
    const before = net.snapshot();
    const task = [tasks[ti] as LabelledTask];
    for (let s = 0; s < cfg.innerSteps; s++) net.step(task, cfg.innerLearningRate);
    const eta = reptileEta(cfg.eta0, k, order.length);
    if (eta !== 1) net.restore(reptileInterpolate(before, net.snapshot(), eta));
    if (k % 25 === 0 || k === order.length - 1) progress.tick(k + 1);
  }
  progress.end();
  return net;
}

/** The tuned recipe: Adam over mini-batches of all stored tasks for several epochs. */
export async function trainOffline(
  tasks: LabelledTask[],
  d: number,
  cfg: ValueFunctionTrainConfig,
  progress: ProgressReporter,
  label = 'meta-train value function (offline)',
  control?: FitControl,
): Promise<TrainedValueFunction> {
  const net = learner(d, cfg, 'adam');
  const rng = new Rng(cfg.seed + 1);
  const pause = yielder(control, () => {
    net.dispose();
    progress.end('stopped');
  });
  const perEpoch = Math.ceil(tasks.length / cfg.taskBatch);
  progress.start(label, cfg.epochs * perEpoch);
  let step = 0;
  const order = tasks.map((_, i) => i);
  const totalSteps = cfg.epochs * perEpoch;
  for (let epoch = 0; epoch < cfg.epochs; epoch++) {
    rng.shuffle(order);
    for (let b = 0; b < perEpoch; b++) {
      await pause();
      const learningRate =
        cfg.learningRate * (1 - (1 - cfg.finalLearningRateFraction) * (step / Math.max(1, totalSteps - 1)));
      const batch = order.slice(b * cfg.taskBatch, (b + 1) * cfg.taskBatch).map((i) => tasks[i] as LabelledTask);
      net.step(batch, learningRate);
      step++;
      if (step % 10 === 0 || step === cfg.epochs * perEpoch) progress.tick(step);
    }
  }
  progress.end();
  return net;
}

/**
 * One ensemble member's training as a job (what a compute-pool worker runs): the recipe's loop
 * on the given tasks and configuration (its seed picks the member). The same job gives the same
 * layers bit for bit on any thread.
 */
export interface MemberJob {
  training: 'online' | 'offline';
  tasks: LabelledTask[];
  d: number;
  cfg: ValueFunctionTrainConfig;
}

/** Trains one member (`label` names its progress) and returns its checkpoint layers. */
export async function trainMember(
  job: MemberJob,
  progress: ProgressReporter,
  label: string,
  control?: FitControl,
): Promise<DenseLayer[]> {
  const net =
    job.training === 'online'
      ? await trainReptileOnline(job.tasks, job.d, job.cfg, progress, control)
      : await trainOffline(job.tasks, job.d, job.cfg, progress, label, control);
  const layers = net.toLayers();
  net.dispose();
  return layers;
}
