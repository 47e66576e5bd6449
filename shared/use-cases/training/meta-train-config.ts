import type { TrajectoryConfig } from '../../method/trajectory.js';
import type { ValueFunctionTrainConfig } from '../../method/value-function-training.js';

export type Recipe = 'paper' | 'tuned';

export interface MetaTrainConfig {
  recipe: Recipe;
  trajectories: TrajectoryConfig;
  /** 'gp' (default) or 'linear' interpolation of the sparse observations. */
  labelling: 'gp' | 'linear';
  /** Fraction of tasks held out to measure the value function (health figure). */
  heldOutFraction: number;
  /** Members of the ensemble (tuned recipe; the paper trains one). */
  ensemble: number;
  /** Standardise phi and targets with meta-training statistics (tuned) or use raw values (paper). */
  standardise: boolean;
  /** 'online' Reptile (paper) or 'offline' training over all stored tasks (tuned). */
  training: 'online' | 'offline';
  /** Train on every `trainStride`-th step of each trajectory (1 = all; neighbouring GP labels are nearly equal). */
  trainStride: number;
  train: ValueFunctionTrainConfig;
  checkpointId: string;
  jobId: string;
}

export interface ValueFunctionHealth {
  /** Mean absolute error on held-out tasks' real observations (normalised metric units). */
  heldOutMae: number | null;
  /** The same for a constant predictor (the mean of the training observations). */
  constantMae: number | null;
  /** Spearman rank correlation of predictions vs held-out observations, pooled over tasks. */
  spearman: number | null;
  heldOutObservations: number;
}
