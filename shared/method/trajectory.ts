import type { BalancedSampler } from '../data/sampler.js';
import type { AdaptedModel } from '../models/adapted-model.js';
import type { ProgressReporter } from '../ports/progress.port.js';
import { Rng } from '../util/random.js';
import { BatchedOptimizer, type OptimizerKind } from './optimizers.js';

/**
 * Stage 1: loss-only fine-tuning runs of phi ("tasks"), each from a random phi_0 with random
 * mini-batches, T steps of SGD or Adam. All tasks of a chunk advance in lockstep so one set of
 * kernels serves them all.
 */
export interface TrajectoryConfig {
  tasks: number;
  steps: number;
  batchSize: number;
  optimizer: OptimizerKind;
  learningRate: number;
  /** Std of phi_0 ~ N(0, s^2 I) (METHOD.md: 1; at 0.5 the metric barely moves). */
  phi0Std: number;
  /** Metric observations per task, K >= 2, always including t = 0 and t = T. */
  queries: number;
  seed: number;
}

export interface Trajectories {
  n: number;
  T: number;
  d: number;
  /** Row-major [n][T + 1][d]. */
  phis: Float32Array;
  /** Mini-batch loss at each step [n][T] (the loss of the step that left phi_t). */
  losses: Float32Array;
  /** Per task, the sorted steps at which the metric is observed. */
  querySteps: number[][];
}

/** The K observation steps of one task: t = 0, t = T and K - 2 distinct random steps between. */
export function chooseQuerySteps(rng: Rng, T: number, K: number): number[] {
  const inner = rng.sampleDistinct(1, T, Math.max(0, Math.min(K, T + 1) - 2));
  return [...new Set([0, ...inner, T])].sort((a, b) => a - b);
}

export function generateTrajectories(
  model: AdaptedModel,
  sampler: BalancedSampler,
  config: TrajectoryConfig,
  progress: ProgressReporter,
  chunkTasks = 200,
): Trajectories {
  const { tasks: n, steps: T, batchSize: B } = config;
  const d = model.d;
  const rng = new Rng(config.seed);
  const phis = new Float32Array(n * (T + 1) * d);
  const losses = new Float32Array(n * T);
  const querySteps: number[][] = [];
  for (let i = 0; i < n; i++) querySteps.push(chooseQuerySteps(rng, T, config.queries));
  progress.start('trajectories (loss-only fine-tuning)', n * T);
  let done = 0;
  for (let start = 0; start < n; start += chunkTasks) {
    const m = Math.min(chunkTasks, n - start);
    const phi = rng.normals(m * d, config.phi0Std);
    const opt = new BatchedOptimizer(config.optimizer, config.learningRate, m * d);
    const rows = new Int32Array(m * B);
    const record = (t: number) => {
      for (let i = 0; i < m; i++) phis.set(phi.subarray(i * d, (i + 1) * d), ((start + i) * (T + 1) + t) * d);
    };
    record(0);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < m; i++) sampler.sampleInto(rng, rows, i * B, B);
      const { loss, grad } = model.lossAndGrad(phi, m, rows, B);
      opt.step(phi, grad);
      for (let i = 0; i < m; i++) losses[(start + i) * T + t] = loss[i] as number;
      record(t + 1);
      done += m;
      progress.tick(done);
    }
  }
  progress.end();
  return { n, T, d, phis, losses, querySteps };
}

/** phi of task i at step t (a view). */
export function phiAt(traj: Trajectories, task: number, step: number): Float32Array {
  const off = (task * (traj.T + 1) + step) * traj.d;
  return traj.phis.subarray(off, off + traj.d);
}
