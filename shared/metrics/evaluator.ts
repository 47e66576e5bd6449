/**
 * The black-box metric contract. An evaluator sees predictions and labels only, never the model.
 * `scores` holds positive-class probabilities for binary tasks (length n) and per-class
 * probabilities, row-major n x classes, for multi-class ones.
 */
export interface EvaluationInput {
  readonly scores: Float32Array;
  readonly labels: Int32Array;
  /** 2 for binary tasks. */
  readonly classes: number;
}

export type Direction = 'minimize' | 'maximize';

export interface Evaluator {
  readonly name: string;
  readonly direction: Direction;
  /** Version string reported with each result (user modules may set it). */
  readonly version?: string;
  /** Returns the metric in its natural direction, within [0, 1]. */
  evaluate(input: EvaluationInput): number | Promise<number>;
}

/** Internal convention: lower is better, within [0, 1]. */
export function normalise(value: number, direction: Direction): number {
  return direction === 'maximize' ? 1 - value : value;
}

export function denormalise(normalised: number, direction: Direction): number {
  return direction === 'maximize' ? 1 - normalised : normalised;
}
