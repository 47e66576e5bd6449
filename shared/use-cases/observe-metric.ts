import type { AdaptedModel } from '../models/adapted-model.js';
import type { MetricOracle, MetricQuery } from '../ports/metric-oracle.port.js';
import type { ProgressReporter } from '../ports/progress.port.js';

export interface Observation {
  step: number;
  /** Normalised metric (lower is better). */
  value: number;
}

export interface QueryOutcome {
  observations: Observation[][];
  sent: number;
  failed: number;
  failures: { taskId: number; step: number; code: string; message: string }[];
}

/**
 * Asks the oracle for the metric at each requested (task, step) phi, predictions on the
 * evaluation split computed here in batches. Failed queries are recorded and skipped: the
 * caller carries on with the observations it has.
 */
export async function observeMetric(
  model: AdaptedModel,
  oracle: MetricOracle,
  requests: { taskId: number; step: number; phi: Float32Array }[],
  evalRows: Int32Array,
  jobId: string,
  split: string,
  tasks: number,
  progress: ProgressReporter,
  batch = 48,
): Promise<QueryOutcome> {
  const observations: Observation[][] = Array.from({ length: tasks }, () => []);
  const failures: QueryOutcome['failures'] = [];
  const d = model.d;
  const per = evalRows.length * (model.classes === 2 ? 1 : model.classes);
  progress.start(`metric queries (${oracle.metric.name})`, requests.length);
  for (let start = 0; start < requests.length; start += batch) {
    const chunk = requests.slice(start, start + batch);
    const phis = new Float32Array(chunk.length * d);
    chunk.forEach((r, i) => phis.set(r.phi, i * d));
    const scores = model.predict(phis, chunk.length, evalRows);
    const queries: MetricQuery[] = chunk.map((r, i) => ({
      jobId,
      taskId: r.taskId,
      step: r.step,
      split,
      scores: scores.slice(i * per, (i + 1) * per),
    }));
    const results = await oracle.evaluate(queries);
    results.forEach((res, i) => {
      const r = chunk[i] as (typeof chunk)[number];
      if (res.ok) (observations[r.taskId] as Observation[]).push({ step: r.step, value: res.value.normalised });
      else failures.push({ taskId: r.taskId, step: r.step, code: res.error.code, message: res.error.message });
    });
    progress.tick(
      Math.min(requests.length, start + batch),
      failures.length > 0 ? `${failures.length} failed` : undefined,
    );
  }
  progress.end();
  for (const o of observations) o.sort((a, b) => a.step - b.step);
  return { observations, sent: requests.length, failed: failures.length, failures };
}
