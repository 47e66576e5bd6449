import type { TrajectoryChunkJob, TrajectoryChunkResult } from '../method/trajectory.js';
import type { MemberJob } from '../method/value-function-training.js';
import type { AdaptedModelSpec } from '../models/model-spec.js';
import type { DenseLayer } from '../schemas/checkpoint.js';

/**
 * Worker threads that hold a copy of the frozen adapted model and share its heavy, independent
 * work with the main thread: chunks of loss-only trajectories, the predictions behind metric
 * queries, and value-function ensemble members. Each job's result is the bits this thread would compute (same kernels, same inputs),
 * so a run gives the same results with any number of threads. The data set is the pool's from
 * its start; `load` gives every worker the model of the current run.
 */
export interface ComputePool {
  /** Worker threads beside the main thread (`--threads N` starts N - 1). */
  readonly workers: number;
  /** Builds the model of `spec` in every worker, replacing the one before. */
  load(spec: AdaptedModelSpec): Promise<void>;
  trajectoryChunk(job: TrajectoryChunkJob): Promise<TrajectoryChunkResult>;
  /** model.predict(phis, n, rows) in a worker. */
  predict(phis: Float32Array, n: number, rows: Int32Array): Promise<Float32Array>;
  /** trainMember(job) in a worker: one ensemble member's checkpoint layers (needs no model). */
  trainMember(job: MemberJob): Promise<DenseLayer[]>;
  /**
   * Frees the workers' memory between stages while no job runs (they start again, with the data
   * set and the current model, for the next job); a no-op while busy.
   */
  release(): Promise<void>;
  close(): Promise<void>;
}
