import type { BalancedSampler } from '../../data/sampler.js';
import { generateTrajectories, phiAt, type Trajectories } from '../../method/trajectory.js';
import type { FitControl } from '../../method/value-function-training.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { ComputePool } from '../../ports/compute-pool.port.js';
import type { MetricOracle } from '../../ports/metric-oracle.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import type { ValueFunctionCheckpoint } from '../../schemas/checkpoint.js';
import { ok, type Result } from '../../util/result.js';
import type { UseCaseError } from './errors.js';
import { type FitTrajectory, fitTrajectories } from './fit-trajectories.js';
import type { MetaTrainConfig, ValueFunctionHealth } from './meta-train-config.js';
import { type Observation, observeMetric, type QueryOutcome } from './observe-metric.js';

export interface MetaTrainDeps {
  model: AdaptedModel;
  sampler: BalancedSampler;
  valRows: Int32Array;
  /** Labels of the validation rows (registered once with the oracle). */
  valLabels: Int32Array;
  /** Context columns of the validation rows, handed to the evaluator with the rows (issue 19). */
  valContext?: Readonly<Record<string, Float64Array>>;
  oracle: MetricOracle;
  progress: ProgressReporter;
  dataset: string;
}

export interface MetaTrainResult {
  checkpoint: Omit<ValueFunctionCheckpoint, 'version'>;
  health: ValueFunctionHealth;
  trajectories: Trajectories;
  observations: Observation[][];
  queries: { sent: number; failed: number };
}

/**
 * Meta-training (Stages 1-4): collect loss-only trajectories, observe the black-box metric
 * sparsely along them through the oracle, densify the labels with a GP, train the value
 * function (online Reptile or offline), and measure it on held-out tasks.
 */
export async function metaTrain(
  cfg: MetaTrainConfig,
  deps: MetaTrainDeps,
): Promise<Result<MetaTrainResult, UseCaseError>> {
  return fitValueFunction(cfg, await collectObservations(cfg, deps), deps);
}

export interface CollectedTasks {
  trajectories: Trajectories;
  outcome: QueryOutcome;
}

/** Stages 1 and the metric queries: loss-only trajectories and their sparse observations. */
export async function collectObservations(
  cfg: Pick<MetaTrainConfig, 'trajectories' | 'jobId'>,
  deps: MetaTrainDeps,
): Promise<CollectedTasks> {
  const { model, progress } = deps;
  const traj = generateTrajectories(model, deps.sampler, cfg.trajectories, progress);
  await deps.oracle.registerSplit('val', {
    labels: deps.valLabels,
    classes: model.classes,
    rows: deps.valRows,
    ...(deps.valContext ? { context: deps.valContext } : {}),
  });
  const requests = traj.querySteps.flatMap((steps, taskId) =>
    steps.map((step) => ({ taskId, step, phi: phiAt(traj, taskId, step) })),
  );
  const outcome = await observeMetric(model, deps.oracle, requests, deps.valRows, cfg.jobId, 'val', traj.n, progress);
  return { trajectories: traj, outcome };
}

/** Stages 2-4 on collected tasks: GP labels, value-function training, held-out health. */
export async function fitValueFunction(
  cfg: MetaTrainConfig,
  collected: CollectedTasks,
  deps: Pick<MetaTrainDeps, 'model' | 'oracle' | 'progress' | 'dataset'> & { pool?: ComputePool | undefined },
  control?: FitControl,
): Promise<Result<MetaTrainResult, UseCaseError>> {
  const { trajectories: traj, outcome } = collected;
  const allSteps = Array.from({ length: traj.T + 1 }, (_, t) => t);
  const tasks: FitTrajectory[] = outcome.observations.map((observations, i) => ({
    steps: allSteps,
    phis: traj.phis.subarray(i * (traj.T + 1) * traj.d, (i + 1) * (traj.T + 1) * traj.d),
    T: traj.T,
    observations,
  }));
  const fitted = await fitTrajectories(cfg, tasks, {
    control,
    pool: deps.pool,
    d: traj.d,
    adapterKind: deps.model.adapterKind,
    metric: deps.oracle.metric,
    dataset: deps.dataset,
    progress: deps.progress,
    queries: outcome,
  });
  if (!fitted.ok) return fitted;
  const { checkpoint, health } = fitted.value;
  return ok({
    checkpoint,
    health,
    trajectories: traj,
    observations: outcome.observations,
    queries: { sent: outcome.sent, failed: outcome.failed },
  });
}
