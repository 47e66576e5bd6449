import { fitGp, linearInterpolation } from '../../method/gp.js';
import { CompiledValueFunction } from '../../method/value-function-f32.js';
import {
  type FitControl,
  type LabelledTask,
  labelTask,
  type MemberJob,
  trainMember,
} from '../../method/value-function-training.js';
import { mean, spearman, std } from '../../method/stats.js';
import type { ComputePool } from '../../ports/compute-pool.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import type { DenseLayer, ValueFunctionCheckpoint } from '../../schemas/checkpoint.js';
import { Rng } from '../../util/random.js';
import { err, ok, type Result } from '../../util/result.js';
import { LIBRARY_VERSION } from '../../version.js';
import { UseCaseError } from './errors.js';
import type { MetaTrainConfig, ValueFunctionHealth } from './meta-train-config.js';
import type { Observation, QueryOutcome } from './observe-metric.js';

/**
 * One recorded trajectory for fitting: phi at its recorded steps and the metric at a few of
 * them. The service's own trajectories record every step 0..T; a remote training loop
 * (`metricopt fit`, shared/use-cases/byom/fit-observations.ts) records what it logged.
 */
export interface FitTrajectory {
  /** Recorded steps, ascending, distinct, in 0..T. */
  steps: readonly number[];
  /** phi at each recorded step, row-major [steps.length][d]. */
  phis: Float32Array;
  /** The step scale of the GP (steps are mapped to t / T). */
  T: number;
  /** Metric observations (normalised, lower is better), each at a recorded step. */
  observations: Observation[];
}

export interface FitInfo {
  d: number;
  adapterKind: ValueFunctionCheckpoint['adapter']['kind'];
  metric: ValueFunctionCheckpoint['metric'];
  dataset: string;
  progress: ProgressReporter;
  /** How the observations were obtained, for the checkpoint and the no-data message. */
  queries: Pick<QueryOutcome, 'sent' | 'failed' | 'failures'>;
  /** Stops the fit between training steps (FitStopped); a training job passes its SIGTERM here. */
  control?: FitControl | undefined;
  /** Worker threads that train ensemble members beside the main thread. */
  pool?: ComputePool | undefined;
}

/**
 * Stages 2-4 on any recorded trajectories: GP labels at every recorded step, value-function
 * training (online Reptile or offline, an ensemble), the checkpoint, and its health on held-out
 * trajectories' real observations.
 */
export async function fitTrajectories(
  cfg: MetaTrainConfig,
  tasks: readonly FitTrajectory[],
  info: FitInfo,
): Promise<
  Result<{ checkpoint: Omit<ValueFunctionCheckpoint, 'version'>; health: ValueFunctionHealth }, UseCaseError>
> {
  const { d, progress, queries } = info;
  const n = tasks.length;
  const task = (i: number) => tasks[i] as FitTrajectory;
  const rowOf = tasks.map((t) => new Map(t.steps.map((s, k) => [s, k])));
  const phiOf = (i: number, k: number) => task(i).phis.subarray(k * d, (k + 1) * d);
  const phiAtStep = (i: number, step: number) => {
    const k = (rowOf[i] as Map<number, number>).get(step);
    if (k === undefined) throw new Error(`fitTrajectories: task ${i} has no phi at observed step ${step}`);
    return phiOf(i, k);
  };

  // Tasks with at least two observations can be labelled; the others are dropped.
  const usable = tasks.map((t, i) => (t.observations.length >= 2 ? i : -1)).filter((i) => i >= 0);
  if (usable.length < 2) {
    return err(
      new UseCaseError(
        'META_TRAIN_NO_DATA',
        `meta-train: only ${usable.length} task(s) got two or more metric observations (${queries.failed} of ${queries.sent} queries failed${queries.failures[0] ? `; first: ${queries.failures[0].message}` : ''})`,
      ),
    );
  }
  const order = new Rng(cfg.trajectories.seed + 99).shuffle([...usable]);
  const nHeld = Math.min(order.length - 1, Math.max(1, Math.round(order.length * cfg.heldOutFraction)));
  const heldOut = order.slice(0, nHeld);
  const trainTasks = order.slice(nHeld);

  // GP labels in normalised metric units, at every recorded step.
  const gpMean: Float32Array[] = [];
  const gpStd: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const { observations: obs, steps: recorded, T } = task(i);
    if (obs.length < 2) {
      gpMean.push(new Float32Array(recorded.length));
      gpStd.push(new Float32Array(recorded.length).fill(1));
      continue;
    }
    const steps = obs.map((o) => o.step);
    const values = obs.map((o) => o.value);
    const fit = cfg.labelling === 'gp' ? fitGp(steps, values, T) : linearInterpolation(steps, values, T);
    gpMean.push(Float32Array.from(recorded, (t) => fit.mean[t] as number));
    gpStd.push(Float32Array.from(recorded, (t) => fit.std[t] as number));
  }

  // Standardisation statistics from the training tasks only.
  const inMean = new Float64Array(d);
  const inStd = new Float64Array(d).fill(1);
  let tMean = 0;
  let tStd = 1;
  if (cfg.standardise) {
    const count = trainTasks.reduce((a, i) => a + task(i).steps.length, 0);
    for (const i of trainTasks)
      for (let k = 0; k < task(i).steps.length; k++) {
        const p = phiOf(i, k);
        for (let j = 0; j < d; j++) inMean[j] = (inMean[j] as number) + (p[j] as number) / count;
      }
    const acc = new Float64Array(d);
    for (const i of trainTasks)
      for (let k = 0; k < task(i).steps.length; k++) {
        const p = phiOf(i, k);
        for (let j = 0; j < d; j++)
          acc[j] = (acc[j] as number) + ((p[j] as number) - (inMean[j] as number)) ** 2 / count;
      }
    for (let j = 0; j < d; j++) inStd[j] = Math.max(Math.sqrt(acc[j] as number), 1e-6);
    const allTargets = trainTasks.flatMap((i) => Array.from(gpMean[i] as Float32Array));
    tMean = mean(allTargets);
    tStd = Math.max(std(allTargets), 1e-6);
  }

  // Every `trainStride`-th recorded step, and the last one.
  const stride = Math.max(1, Math.floor(cfg.trainStride));
  const toTask = (i: number): LabelledTask => {
    const count = task(i).steps.length;
    const rows: number[] = [];
    for (let k = 0; k < count; k += stride) rows.push(k);
    if (rows[rows.length - 1] !== count - 1) rows.push(count - 1);
    const x = new Float32Array(rows.length * d);
    rows.forEach((k, r) => {
      const p = phiOf(i, k);
      for (let j = 0; j < d; j++) x[r * d + j] = ((p[j] as number) - (inMean[j] as number)) / (inStd[j] as number);
    });
    const m = Float32Array.from(rows, (k) => (((gpMean[i] as Float32Array)[k] as number) - tMean) / tStd);
    const s = Float32Array.from(rows, (k) => ((gpStd[i] as Float32Array)[k] as number) / tStd);
    return labelTask(x, m, s, cfg.train.fisherThreshold);
  };
  const labelled = trainTasks.map(toTask);

  // Ensemble members: with a compute pool, member e trains on thread e mod (workers + 1), the
  // main thread being thread 0 (it reports progress); each member's bits do not depend on where.
  const count = Math.max(1, cfg.ensemble);
  const jobOf = (e: number): MemberJob => ({
    training: cfg.training,
    tasks: labelled,
    d,
    cfg: { ...cfg.train, seed: cfg.train.seed + 1000 * e },
  });
  const threads = 1 + (info.pool?.workers ?? 0);
  const away = new Map<number, Promise<DenseLayer[]>>();
  for (let e = 0; e < count; e++) if (info.pool && e % threads !== 0) away.set(e, info.pool.trainMember(jobOf(e)));
  // A stopped fit (FitStopped below) leaves these unread.
  for (const p of away.values()) p.catch(() => undefined);
  const memberLayers: DenseLayer[][] = [];
  for (let e = 0; e < count; e++) {
    if (away.has(e)) continue;
    const suffix = count > 1 ? ` [${e + 1}/${count}]` : '';
    memberLayers[e] = await trainMember(
      jobOf(e),
      cfg.training === 'online' ? progressWithLabel(progress, suffix) : progress,
      `meta-train value function (offline)${suffix}`,
      info.control,
    );
  }
  for (const [e, p] of away) memberLayers[e] = await p;
  const members = memberLayers.map((layers) => ({ layers }));

  const checkpoint: Omit<ValueFunctionCheckpoint, 'version'> = {
    format: 'metricopt.value-function',
    schemaVersion: 1,
    id: cfg.checkpointId,
    createdAt: new Date().toISOString(),
    libraryVersion: LIBRARY_VERSION,
    d,
    metric: info.metric,
    recipe: cfg.recipe,
    dataset: info.dataset,
    adapter: { kind: info.adapterKind, d },
    inputNormalisation: { mean: Array.from(inMean), std: Array.from(inStd) },
    targetNormalisation: { mean: tMean, std: tStd },
    hiddenActivation: 'relu',
    embeddingLayer: cfg.train.hidden.length - 1,
    members,
    training: {
      tasks: trainTasks.length,
      heldOutTasks: heldOut.length,
      heldOutMae: null,
      constantMae: null,
      spearman: null,
    },
  };

  // Health: predictions vs the real held-out observations.
  const vf = new CompiledValueFunction({ ...checkpoint, version: 1 });
  const trainObs = trainTasks.flatMap((i) => task(i).observations.map((o) => o.value));
  const constant = mean(trainObs);
  const preds: number[] = [];
  const truth: number[] = [];
  for (const i of heldOut) {
    for (const o of task(i).observations) {
      preds.push(vf.value(phiAtStep(i, o.step)));
      truth.push(o.value);
    }
  }
  const health: ValueFunctionHealth = {
    heldOutMae: truth.length ? mean(truth.map((y, k) => Math.abs(y - (preds[k] as number)))) : null,
    constantMae: truth.length ? mean(truth.map((y) => Math.abs(y - constant))) : null,
    spearman: truth.length > 2 ? spearman(preds, truth) : null,
    heldOutObservations: truth.length,
  };
  checkpoint.training = {
    ...checkpoint.training,
    heldOutMae: health.heldOutMae,
    constantMae: health.constantMae,
    spearman: health.spearman,
    queriesSent: queries.sent,
    queriesFailed: queries.failed,
    steps: tasks.reduce((a, t) => Math.max(a, t.T), 0),
    observationsPerTask: cfg.trajectories.queries,
    ensemble: count,
    training: cfg.training,
    trainStride: stride,
    standardised: cfg.standardise,
  };
  return ok({ checkpoint, health });
}

function progressWithLabel(p: ProgressReporter, suffix: string): ProgressReporter {
  return {
    start: (stage, total) => p.start(`${stage}${suffix}`, total),
    tick: (done, note) => p.tick(done, note),
    end: (summary) => p.end(summary),
  };
}
