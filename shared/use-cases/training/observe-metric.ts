import type { AdaptedModel } from '../../models/adapted-model.js';
import type { ComputePool } from '../../ports/compute-pool.port.js';
import type { MetricOracle, MetricQuery } from '../../ports/metric-oracle.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import { embeddingsOf, readsEmbeddings } from './model-outputs.js';

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

export interface MetricRequest {
  taskId: number;
  step: number;
  phi: Float32Array;
}

/**
 * Asks the oracle for the metric at each requested (task, step) phi, predictions on the
 * evaluation split computed here in batches. Failed queries are recorded and skipped: the
 * caller carries on with the observations it has.
 */
export async function observeMetric(
  model: AdaptedModel,
  oracle: MetricOracle,
  requests: MetricRequest[],
  evalRows: Int32Array,
  jobId: string,
  split: string,
  tasks: number,
  progress: ProgressReporter,
  batch = 48,
): Promise<QueryOutcome> {
  const c = new MetricObserver(model, oracle, requests, evalRows, { jobId, split, tasks, batch });
  progress.start(`metric queries (${oracle.metric.name})`, requests.length);
  while (!c.finished) {
    await c.nextBatch();
    progress.tick(c.done, c.failures.length > 0 ? `${c.failures.length} failed` : undefined);
  }
  progress.end();
  return c.outcome();
}

/** What a metric observer has collected: enough to continue after `done` requests. */
export interface ObserverState {
  done: number;
  observations: Observation[][];
  failures: QueryOutcome['failures'];
}

/**
 * The metric queries one batch at a time, so a long run can be checkpointed between batches and
 * resumed from `restore`; every request is answered once and counted once.
 */
export class MetricObserver {
  observations: Observation[][];
  failures: QueryOutcome['failures'] = [];
  done = 0;

  constructor(
    private readonly model: AdaptedModel,
    private readonly oracle: MetricOracle,
    private readonly requests: MetricRequest[],
    private readonly evalRows: Int32Array,
    private readonly opts: {
      jobId: string;
      split: string;
      tasks: number;
      batch: number;
      /** Worker threads for the predictions (the same bits); the evaluator stays in this thread. */
      pool?: ComputePool | undefined;
    },
  ) {
    this.observations = Array.from({ length: opts.tasks }, () => []);
  }

  get total(): number {
    return this.requests.length;
  }
  get finished(): boolean {
    return this.done >= this.requests.length;
  }

  restore(state: ObserverState): void {
    if (state.observations.length !== this.opts.tasks || state.done > this.requests.length) {
      throw new Error(
        `MetricObserver: state for ${state.observations.length} tasks / ${state.done} requests does not fit`,
      );
    }
    this.done = state.done;
    this.observations = state.observations.map((o) => o.map((x) => ({ ...x })));
    this.failures = state.failures.map((f) => ({ ...f }));
  }

  state(): ObserverState {
    return {
      done: this.done,
      observations: this.observations.map((o) => o.map((x) => ({ ...x }))),
      failures: this.failures.map((f) => ({ ...f })),
    };
  }

  async nextBatch(): Promise<void> {
    const { model, requests } = this;
    const d = model.d;
    const per = this.evalRows.length * (model.classes === 2 ? 1 : model.classes);
    const start = this.done;
    const chunk = requests.slice(start, start + this.opts.batch);
    const phis = new Float32Array(chunk.length * d);
    chunk.forEach((r, i) => phis.set(r.phi, i * d));
    const pool = this.opts.pool;
    const scores = pool
      ? await predictOn(pool, model, phis, chunk.length, this.evalRows)
      : model.predict(phis, chunk.length, this.evalRows);
    // A metric that reads embeddings gets the model's, computed here (the pool predicts only).
    const embeddings = readsEmbeddings(this.oracle.metric)
      ? embeddingsOf(model, phis, chunk.length, this.evalRows)
      : undefined;
    const queries: MetricQuery[] = chunk.map((r, i) => ({
      jobId: this.opts.jobId,
      taskId: r.taskId,
      step: r.step,
      split: this.opts.split,
      scores: scores.slice(i * per, (i + 1) * per),
      ...(embeddings ? { embeddings: embeddings[i] as NonNullable<MetricQuery['embeddings']> } : {}),
    }));
    const results = await this.oracle.evaluate(queries);
    results.forEach((res, i) => {
      const r = chunk[i] as (typeof chunk)[number];
      if (res.ok) (this.observations[r.taskId] as Observation[]).push({ step: r.step, value: res.value.normalised });
      else this.failures.push({ taskId: r.taskId, step: r.step, code: res.error.code, message: res.error.message });
    });
    this.done = Math.min(requests.length, start + this.opts.batch);
  }

  outcome(): QueryOutcome {
    const observations = this.observations.map((o) => [...o].sort((a, b) => a.step - b.step));
    return { observations, sent: this.requests.length, failed: this.failures.length, failures: [...this.failures] };
  }
}

/**
 * model.predict of n phis, split between this thread and a pool's workers (a phi's scores do
 * not depend on the phis beside it), the scores put back in order: the same bits.
 */
export async function predictOn(
  pool: ComputePool,
  model: Pick<AdaptedModel, 'd' | 'predict'>,
  phis: Float32Array,
  n: number,
  rows: Int32Array,
): Promise<Float32Array> {
  const d = model.d;
  const parts = Math.max(1, Math.min(pool.workers + 1, n));
  const bounds = Array.from({ length: parts + 1 }, (_, p) => Math.floor((p * n) / parts));
  const share = (p: number) => phis.subarray((bounds[p] as number) * d, (bounds[p + 1] as number) * d);
  const count = (p: number) => (bounds[p + 1] as number) - (bounds[p] as number);
  // The workers' shares go out first; this thread computes the first share meanwhile.
  const away = Array.from({ length: parts - 1 }, (_, p) => pool.predict(share(p + 1), count(p + 1), rows));
  const scores = [model.predict(share(0), count(0), rows), ...(await Promise.all(away))];
  const out = new Float32Array(scores.reduce((s, x) => s + x.length, 0));
  let at = 0;
  for (const s of scores) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}
