import type { MetricError } from '../metrics/errors.js';
import type { Result } from '../util/result.js';

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
  /**
   * Which rows are scored: `rows[i]` is the 0-based index, in the dataset as loaded (a9a: the
   * train file's rows, then the test file's; other files: line order), of the row scored by
   * `scores[i]` / `labels[i]`. Lets a metric depend on who is scored (costs per row, groups,
   * queries). Every built-in path sets it (in process, worker thread, evaluation queue, webhook,
   * Lambda, fit jobs: test/evaluation/row-context.test.ts); it stays optional in the type so that
   * hand-written callers and older evaluators keep working.
   */
  readonly rows?: Int32Array;
  /**
   * Named per-row numeric columns the user supplied with the dataset (`--context FILE`), sliced
   * to the same rows as `scores`/`labels`: `context[name][i]` belongs to row `rows[i]`.
   */
  readonly context?: Readonly<Record<string, Float64Array>>;
  /**
   * The output kind `embedding`, beside the probabilities in `scores`: one L2-normalised
   * `dim`-vector per scored row, row-major (`values[i * dim .. (i + 1) * dim)` belongs to
   * `labels[i]`), for retrieval metrics (`recall-at-K`). Given to evaluators whose `outputs`
   * include 'embedding'.
   */
  readonly embeddings?: { readonly dim: number; readonly values: Float32Array };
}

/** What a model hands an evaluator: class probabilities (always) and, on request, embeddings. */
export type OutputKind = 'probabilities' | 'embedding';

export type Direction = 'minimize' | 'maximize';

export interface Evaluator {
  readonly name: string;
  readonly direction: Direction;
  /** Version string reported with each result (user modules may set it). */
  readonly version?: string;
  /** The output kinds it reads (absent: probabilities only); 'embedding' asks for `input.embeddings`. */
  readonly outputs?: readonly OutputKind[];
  /**
   * Returns the metric in its natural direction, within [0, 1]. `options.signal` is aborted when
   * the caller's deadline passes (evaluateChecked); an evaluator that can stop early (a worker
   * thread, a request) should.
   */
  evaluate(input: EvaluationInput, options?: EvaluateOptions): number | Promise<number>;
}

export interface EvaluateOptions {
  signal?: AbortSignal;
}

export interface EvaluatorListing {
  name: string;
  kind: 'builtin' | 'module' | 'webhook';
  direction: Direction;
  version?: string;
  /** The output kinds it reads, when it declares them ('embedding': it needs embeddings). */
  outputs?: readonly OutputKind[];
  /** Module path or webhook URL. */
  source?: string;
}

/** What a worker can evaluate: the built-ins, configured modules and configured webhooks. */
export interface EvaluatorRegistry {
  list(): EvaluatorListing[];
  resolve(name: string): Result<Evaluator, MetricError>;
}
