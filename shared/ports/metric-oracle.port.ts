import type { MetricValue } from '../metrics/checked-evaluator.js';
import type { MetricError } from '../metrics/errors.js';
import type { Result } from '../util/result.js';
import type { OutputKind } from './evaluator.port.js';

/**
 * One black-box metric query: the predictions of the model at adapter parameters phi_t of one
 * task, on the evaluation split. The labels of a split are the same for every query of a job,
 * so they travel by reference (`split`), registered once with `registerSplit`.
 */
export interface MetricQuery {
  /** Stable id of the job (meta-train run, meta-test run). */
  jobId: string;
  taskId: number;
  step: number;
  /** Name of the registered split the scores refer to, e.g. 'val'. */
  split: string;
  scores: Float32Array;
  /**
   * The model's L2-normalised embeddings of the same rows (EvaluationInput.embeddings), for a
   * metric whose `outputs` include 'embedding'; they change with phi, so they travel per query.
   */
  embeddings?: { dim: number; values: Float32Array };
}

export interface SplitLabels {
  labels: Int32Array;
  classes: number;
  /** Dataset row index of each label (EvaluationInput.rows), handed to the evaluator with every query. */
  rows?: Int32Array;
  /** Per-row context columns sliced to the same rows (EvaluationInput.context). */
  context?: Readonly<Record<string, Float64Array>>;
}

/**
 * The port through which every metric query of the method goes: in-process evaluators in the
 * embedded default, an evaluation queue with remote workers in the cloud. A failed query is a
 * value, never an exception, so a trajectory carries on with the observations it has.
 */
export interface MetricOracle {
  /**
   * Evaluator name and direction, for reports and checkpoints, and the output kinds it reads
   * (`outputs` including 'embedding': its queries carry `embeddings`).
   */
  readonly metric: { name: string; direction: 'minimize' | 'maximize'; outputs?: readonly OutputKind[] };
  registerSplit(split: string, labels: SplitLabels): Promise<void>;
  evaluate(queries: MetricQuery[]): Promise<Result<MetricValue, MetricError>[]>;
  close?(): Promise<void>;
}
