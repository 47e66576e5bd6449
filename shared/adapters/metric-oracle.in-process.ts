import type { MetricValue } from '../metrics/checked-evaluator.js';
import { MetricError } from '../metrics/errors.js';
import { evaluationInput } from '../metrics/context-columns.js';
import type { Evaluator } from '../ports/evaluator.port.js';
import { evaluateWithRetries } from '../metrics/retry-policy.js';
import type { MetricOracle, MetricQuery, SplitLabels } from '../ports/metric-oracle.port.js';
import { err, type Result } from '../util/result.js';

/** Runs the evaluator in this process: the embedded default. */
export class InProcessMetricOracle implements MetricOracle {
  readonly metric: MetricOracle['metric'];
  private readonly splits = new Map<string, SplitLabels>();
  /** Number of evaluator calls made (the "real metric queries" a method spent). */
  calls = 0;

  constructor(
    private readonly evaluator: Evaluator,
    private readonly timeoutMs = 0,
  ) {
    this.metric = {
      name: evaluator.name,
      direction: evaluator.direction,
      ...(evaluator.outputs === undefined ? {} : { outputs: evaluator.outputs }),
    };
  }

  async registerSplit(split: string, labels: SplitLabels): Promise<void> {
    this.splits.set(split, labels);
  }

  async evaluate(queries: MetricQuery[]): Promise<Result<MetricValue, MetricError>[]> {
    const out: Result<MetricValue, MetricError>[] = [];
    for (const q of queries) {
      const split = this.splits.get(q.split);
      if (!split) {
        out.push(err(new MetricError('METRIC_INPUT_INVALID', `split '${q.split}' was not registered`)));
        continue;
      }
      this.calls++;
      out.push(
        await evaluateWithRetries(this.evaluator, evaluationInput(q.scores, split, q.embeddings), {
          timeoutMs: this.timeoutMs,
        }),
      );
    }
    return out;
  }
}

/**
 * One in-process oracle per evaluator name, for the lines of a fit job scored from predictions
 * (shared/use-cases/byom/fit-inputs.ts) where no evaluation queue is configured; an unknown name
 * fails the scoring with its code (UNKNOWN_METRIC).
 */
export function inProcessOracles(
  resolve: (name: string) => Result<Evaluator, MetricError>,
  timeoutMs = 0,
): (metric: { name: string }) => Promise<MetricOracle> {
  return async ({ name }) => {
    const evaluator = resolve(name);
    if (!evaluator.ok) throw evaluator.error;
    return new InProcessMetricOracle(evaluator.value, timeoutMs);
  };
}
