import { createHash } from 'node:crypto';
import type { MetricValue } from '../metrics/checked-evaluator.js';
import type { MetricError } from '../metrics/errors.js';
import type { MetricOracle, MetricQuery, SplitLabels } from '../ports/metric-oracle.port.js';
import type { ObjectStore } from '../ports/object-store.port.js';
import type { Queue } from '../ports/queue.port.js';
import { contextKey, embeddingsKey, labelsKey, predictionsKey, resultKey, rowsKey } from '../storage/layout.js';
import { EvaluationError } from '../metrics/errors.js';
import {
  EVALUATION_MESSAGE_VERSION,
  type ContextRef,
  contextRefSchema,
  describeIssue,
  type EvaluationMessage,
  evaluationResultSchema,
  type PayloadRef,
} from '../schemas/evaluation.js';
import { err, ok, type Result } from '../util/result.js';

export interface QueuedMetricOracleOptions {
  queue: Queue;
  store: ObjectStore;
  /** The evaluator the workers resolve by name, its direction and the output kinds it reads. */
  metric: MetricOracle['metric'];
  /** How long one `evaluate` call waits for all of its results (default 10 min). */
  deadlineMs?: number;
  /** How often the store is checked for results (default 10 ms, backing off to 200 ms). */
  pollMs?: number;
  /** Predictions up to this many bytes travel inside the message (default 0: always by key). */
  inlineMaxBytes?: number;
  /** Evaluator timeout asked of the workers (they apply their own limit when smaller). */
  timeoutMs?: number;
  /** Keep each query's predictions in the store after its result arrived (default: delete them). */
  keepPredictions?: boolean;
  /** Says why the workers can no longer answer (all exited...); pending queries then fail at once. */
  health?: () => string | undefined;
}

/**
 * The trainer's side of the evaluation queue: writes each query's predictions (and embeddings,
 * when the query has them) to the object store, sends one message per query, and waits for the result records with a deadline. A
 * failed, dead-lettered or late query comes back as a structured failure, never a hang, so the
 * trajectory carries on with its other observations. A worker records a failure as the query's
 * result before it dead-letters the message (shared/use-cases/evaluation/evaluate-request.ts), so the
 * oracle reads results only and never the dead-letter queue; a message the queue redrives with
 * no result (its worker died on the last allowed delivery) ends at the deadline. Given the same queries, the values are
 * those of the in-process oracle bit for bit (same float32 bytes, same evaluator).
 */
export class QueuedMetricOracle implements MetricOracle {
  readonly metric: MetricOracle['metric'];
  /** Queries answered by a worker (results found already, e.g. on a resumed job, are not counted). */
  calls = 0;
  private readonly splits = new Map<string, SplitLabels>();
  /** Store keys of the split inputs (labels, rows, context) written so far. */
  private readonly inputsWritten = new Set<string>();
  /** Bytes and content hash of each registered split's inputs, computed on first use. */
  private readonly splitInputs = new Map<string, SplitInputs | { problem: string }>();

  constructor(private readonly options: QueuedMetricOracleOptions) {
    this.metric = { ...options.metric };
  }

  async registerSplit(split: string, labels: SplitLabels): Promise<void> {
    this.splits.set(split, labels);
    this.splitInputs.delete(split);
  }

  async evaluate(queries: MetricQuery[]): Promise<Result<MetricValue, MetricError>[]> {
    const { store } = this.options;
    const out: Array<Result<MetricValue, MetricError> | undefined> = new Array(queries.length);
    const pending = new Map<string, number[]>();
    /** Predictions (and embeddings) written to the store for this call, by result key. */
    const stored = new Map<string, string[]>();
    const messages: string[] = [];
    for (let i = 0; i < queries.length; i++) {
      const q = queries[i] as MetricQuery;
      const split = this.splits.get(q.split);
      if (!split) {
        out[i] = err(new EvaluationError('METRIC_INPUT_INVALID', `split '${q.split}' was not registered`));
        continue;
      }
      const inputs = this.inputsOf(q.split, split);
      if ('problem' in inputs) {
        out[i] = err(new EvaluationError('METRIC_INPUT_INVALID', `split '${q.split}': ${inputs.problem}`));
        continue;
      }
      const key = this.idempotencyKey(q, split.classes, inputs);
      const rKey = resultKey(q.jobId, key);
      const waiting = pending.get(rKey);
      if (waiting) {
        waiting.push(i); // the same query twice in one batch: one message, one result
        continue;
      }
      pending.set(rKey, [i]);
      if ((await store.get(rKey)) !== undefined) continue; // answered before (a resumed job)
      const refs = await this.splitRefs(q.jobId, q.split, inputs);
      const storedKeys: string[] = [];
      const predictions = await this.payload(q.scores, predictionsKey(q.jobId, key), storedKeys);
      const embeddings = q.embeddings && {
        dim: q.embeddings.dim,
        data: await this.payload(q.embeddings.values, embeddingsKey(q.jobId, key), storedKeys),
      };
      if (storedKeys.length > 0) stored.set(rKey, storedKeys);
      const message: EvaluationMessage = {
        version: EVALUATION_MESSAGE_VERSION,
        jobId: q.jobId,
        taskId: q.taskId,
        step: q.step,
        split: q.split,
        evaluator: this.metric.name,
        idempotencyKey: key,
        predictions,
        ...refs,
        ...(embeddings ? { embeddings } : {}),
        classes: split.classes,
        sentAt: new Date().toISOString(),
        ...(this.options.timeoutMs === undefined ? {} : { timeoutMs: this.options.timeoutMs }),
      };
      messages.push(JSON.stringify(message));
      // Send as we go, so workers start while later predictions are still being written.
      if (messages.length === 10) await this.send(messages.splice(0));
    }
    if (messages.length > 0) await this.send(messages.splice(0));

    const deadline = Date.now() + (this.options.deadlineMs ?? 600_000);
    const basePollMs = this.options.pollMs ?? 10;
    let pollMs = basePollMs;
    for (let round = 0; pending.size > 0; round++) {
      // Results arrive roughly in send order: look at the oldest pending keys and stop after a
      // run of misses, with a full scan every few rounds for stragglers.
      const full = round % 8 === 0;
      let misses = 0;
      let found = 0;
      for (const [rKey, indices] of pending) {
        const bytes = await store.get(rKey);
        const result = bytes === undefined ? undefined : toResult(rKey, bytes);
        if (result === undefined) {
          // Absent, or still being written: read it again next round.
          if (!full && ++misses >= 16) break;
          continue;
        }
        for (const i of indices) out[i] = result;
        pending.delete(rKey);
        found++;
        // Answered: its predictions are no longer needed (a failed query's stay, for a DLQ replay).
        const keys = stored.get(rKey);
        if (result.ok && keys !== undefined && !this.options.keepPredictions) {
          for (const k of keys) await store.delete(k);
        }
      }
      if (pending.size === 0) break;
      const unhealthy = this.options.health?.();
      const late = Date.now() >= deadline;
      if (unhealthy || late) {
        const reason = unhealthy
          ? `no result: ${unhealthy}`
          : `no result within the deadline of ${this.options.deadlineMs ?? 600_000} ms`;
        for (const [rKey, indices] of pending) {
          const failure = err(new EvaluationError('EVALUATION_DEADLINE_EXCEEDED', `${rKey}: ${reason}`));
          for (const i of indices) out[i] = failure;
        }
        break;
      }
      await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
      pollMs = found > 0 ? basePollMs : Math.min(200, pollMs * 1.5);
    }
    return out as Result<MetricValue, MetricError>[];
  }

  /** A query's float32 payload: inline when small enough, else written under `key` (recorded in `stored`). */
  private async payload(values: Float32Array, key: string, stored: string[]): Promise<PayloadRef> {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    if (bytes.byteLength <= (this.options.inlineMaxBytes ?? 0))
      return { inline: Buffer.from(bytes).toString('base64') };
    await this.options.store.put(key, bytes);
    stored.push(key);
    return { key };
  }

  private async send(messages: string[]): Promise<void> {
    await this.options.queue.send(messages);
    this.calls += messages.length;
  }

  /**
   * Content-derived, so a resent query (a retrying trainer) maps to the same result. A split
   * with rows or context hashes their versions in too, and a query with embeddings its
   * embeddings: other inputs, other result.
   */
  private idempotencyKey(q: MetricQuery, classes: number, inputs: SplitInputs): string {
    const hash = createHash('sha256').update(`${this.metric.name}\n${q.split}\n${classes}\n`);
    if (inputs.rows) hash.update(`rows ${inputs.rows.version}\n`);
    if (inputs.context) hash.update(`context ${inputs.context.version}\n`);
    hash.update(new Uint8Array(q.scores.buffer, q.scores.byteOffset, q.scores.byteLength));
    if (q.embeddings) {
      const e = q.embeddings.values;
      hash.update(`\nembeddings ${q.embeddings.dim}\n`).update(new Uint8Array(e.buffer, e.byteOffset, e.byteLength));
    }
    const digest = hash.digest('hex').slice(0, 16);
    return `t${q.taskId}-s${q.step}-${digest}`;
  }

  private inputsOf(name: string, split: SplitLabels): SplitInputs | { problem: string } {
    let inputs = this.splitInputs.get(name);
    if (inputs === undefined) {
      inputs = splitInputsOf(split);
      this.splitInputs.set(name, inputs);
    }
    return inputs;
  }

  /**
   * A split's labels, rows and context are written once per job and split (content-addressed),
   * then every message references them by key.
   */
  private async splitRefs(
    jobId: string,
    split: string,
    inputs: SplitInputs,
  ): Promise<Pick<EvaluationMessage, 'labels' | 'rows' | 'context'>> {
    const labels = await this.putOnce(labelsKey(jobId, split, inputs.labels.version), inputs.labels.bytes);
    const rows = inputs.rows && (await this.putOnce(rowsKey(jobId, split, inputs.rows.version), inputs.rows.bytes));
    const context: ContextRef | undefined = inputs.context && {
      columns: inputs.context.columns,
      data: await this.putOnce(contextKey(jobId, split, inputs.context.version), inputs.context.bytes),
    };
    return { labels, ...(rows ? { rows } : {}), ...(context ? { context } : {}) };
  }

  private async putOnce(key: string, bytes: Uint8Array): Promise<PayloadRef> {
    if (!this.inputsWritten.has(key)) {
      await this.options.store.put(key, bytes);
      this.inputsWritten.add(key);
    }
    return { key };
  }
}

interface Versioned {
  bytes: Uint8Array;
  /** First 16 hex digits of the bytes' SHA-256. */
  version: string;
}

interface SplitInputs {
  labels: Versioned;
  rows?: Versioned;
  context?: Versioned & { columns: string[] };
}

const versioned = (bytes: Uint8Array, salt = ''): Versioned => ({
  bytes,
  version: createHash('sha256').update(salt).update(bytes).digest('hex').slice(0, 16),
});

const bytesOf = (a: Int32Array | Float64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The bytes the store holds for a split: its labels, and its rows and context when it has them
 * (a length that is not the labels' is the queries' METRIC_INPUT_INVALID, as in process).
 */
function splitInputsOf(split: SplitLabels): SplitInputs | { problem: string } {
  const n = split.labels.length;
  const inputs: SplitInputs = { labels: versioned(bytesOf(split.labels)) };
  if (split.rows) {
    if (split.rows.length !== n) return { problem: `${split.rows.length} rows for ${n} labels` };
    inputs.rows = versioned(bytesOf(split.rows));
  }
  const columns = Object.keys(split.context ?? {});
  if (split.context && columns.length > 0) {
    const names = contextRefSchema.shape.columns.safeParse(columns);
    if (!names.success) return { problem: describeIssue('context columns', names.error) };
    const data = new Float64Array(columns.length * n);
    for (const [j, c] of columns.entries()) {
      const values = split.context[c] as Float64Array;
      if (values.length !== n) return { problem: `context column '${c}' has ${values.length} values for ${n} labels` };
      data.set(values, j * n);
    }
    // The column names are part of what the bytes mean: two splits with other names differ.
    inputs.context = { ...versioned(bytesOf(data), `${JSON.stringify(columns)}\n`), columns };
  }
  return inputs;
}

/** The record as a result; undefined while it is not complete JSON yet (a reader can see a file mid-write). */
function toResult(key: string, bytes: Uint8Array): Result<MetricValue, MetricError> | undefined {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
  const parsed = evaluationResultSchema.safeParse(json);
  if (!parsed.success) {
    return err(new EvaluationError('EVALUATOR_FAILED', `${key}: the result record is not a valid result`));
  }
  const outcome = parsed.data.outcome;
  if (!outcome.ok) return err(new EvaluationError(outcome.code, outcome.message, { key }));
  return ok({ value: outcome.value, normalised: outcome.normalised, durationMs: outcome.durationMs });
}
