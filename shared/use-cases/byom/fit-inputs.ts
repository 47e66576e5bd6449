import type { MetricValue } from '../../metrics/checked-evaluator.js';
import type { MetricError } from '../../metrics/errors.js';
import type { MetricOracle, MetricQuery, SplitLabels } from '../../ports/metric-oracle.port.js';
import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import type { FitJobSpec } from '../../schemas/job.js';
import {
  type FitLabels,
  fitLabelsSchema,
  MAX_LABELS,
  type ObservationIssue,
  predictionsKeySchema,
} from '../../schemas/observations.js';
import { err, ok, type Result } from '../../util/result.js';
import { jobKeys } from '../../storage/layout.js';
import type { ObservationSet } from './observation-store.js';
import { failWith, ObservationError, type StoredObservation } from './observation-batches.js';
import type { FitOracleFactory } from '../../ports/fit.port.js';
import { issueLine } from '../../schemas/zod-issue.js';

/**
 * The metric by evaluator instead of by value (bring your own model): a fit job's labels
 * (`jobs/<id>/inputs/labels.json`, once) and named float32 predictions on them
 * (`jobs/<id>/inputs/predictions/<key>.f32`), referenced by observation lines as
 * `{"predictions": {"evaluator": NAME, "key": KEY}}` and scored when the fit runs through the
 * oracle the runner is given: the evaluation queue where one is configured (the user's
 * proprietary scorer runs on the evaluator workers, never in the training loop), the evaluator
 * in process otherwise. Uploads are idempotent: the same content again is fine, other content
 * under a stored name is PREDICTIONS_CONFLICT. Keys: storage/layout.ts (`jobKeys`).
 */

/** Float32 values per prediction set on these labels: n for two classes, n x classes otherwise. */
const predictionValues = (labels: FitLabels) => labels.labels.length * (labels.classes === 2 ? 1 : labels.classes);

const invalid = (source: string, reason: string) => err(failWith('PREDICTIONS_INVALID', source, [{ line: 0, reason }]));

/** Parses uploaded labels (`{"classes": C, "labels": [..]}`); the reason names the first bad field. */
export function parseFitLabels(json: unknown, source = 'labels'): Result<FitLabels, ObservationError> {
  // A plain loop first: a schema error per bad element of a million would cost seconds.
  const body = json as { labels?: unknown; rows?: unknown; context?: unknown } | null;
  const arrays: [string, unknown, (v: unknown) => boolean, string][] = [
    ['labels', body?.labels, (v) => Number.isInteger(v) && (v as number) >= 0, 'labels must be integers >= 0'],
    ['rows', body?.rows, (v) => Number.isInteger(v) && (v as number) >= 0, 'rows must be integers >= 0'],
  ];
  if (body?.context !== null && typeof body?.context === 'object') {
    for (const [column, values] of Object.entries(body.context)) {
      arrays.push([`context.${column}`, values, Number.isFinite, 'context values must be finite numbers']);
    }
  }
  for (const [field, values, good, message] of arrays) {
    if (!Array.isArray(values)) continue;
    if (values.length > MAX_LABELS) return invalid(source, `${field}: more than ${MAX_LABELS} entries`);
    const bad = values.findIndex((v) => !good(v));
    if (bad >= 0) return invalid(source, `${field}.${bad}: ${message}`);
  }
  const parsed = fitLabelsSchema.safeParse(json);
  if (parsed.success) return ok(parsed.data);
  return invalid(source, issueLine(parsed.error));
}

/**
 * The split a job's predictions are scored on: its labels, their rows (as uploaded, else
 * 0..n-1: the labels' own order) and their context columns, in upload order.
 */
export function splitOf(labels: FitLabels): SplitLabels {
  const n = labels.labels.length;
  return {
    labels: Int32Array.from(labels.labels),
    classes: labels.classes,
    rows: labels.rows ? Int32Array.from(labels.rows) : Int32Array.from({ length: n }, (_, i) => i),
    ...(labels.context === undefined
      ? {}
      : { context: Object.fromEntries(Object.entries(labels.context).map(([c, v]) => [c, Float64Array.from(v)])) }),
  };
}

export async function readFitLabels(store: ObjectStore, id: string): Promise<FitLabels | undefined> {
  const text = await getText(store, jobKeys(id).labels);
  return text === undefined ? undefined : fitLabelsSchema.parse(JSON.parse(text));
}

/** Stores a job's labels once; the same labels again answer `created: false`. */
export async function putFitLabels(
  store: ObjectStore,
  id: string,
  labels: FitLabels,
): Promise<Result<{ n: number; classes: number; created: boolean }, ObservationError>> {
  const text = `${JSON.stringify(labels)}\n`;
  const created = await store.putIfAbsent(jobKeys(id).labels, text);
  if (!created && (await getText(store, jobKeys(id).labels)) !== text) {
    return err(
      new ObservationError('PREDICTIONS_CONFLICT', `fit job '${id}': other labels were uploaded to it already`),
    );
  }
  return ok({ n: labels.labels.length, classes: labels.classes, created });
}

/** Checks one set of predictions: whole float32 values, all finite, as many as the labels need. */
export function checkPredictionBytes(
  bytes: Uint8Array,
  source: string,
  labels: FitLabels | undefined,
): Result<Float32Array, ObservationError> {
  if (bytes.byteLength === 0 || bytes.byteLength % 4 !== 0) {
    return invalid(source, `${bytes.byteLength} bytes is not a whole, non-zero number of float32 values`);
  }
  const values = new Float32Array(bytes.slice().buffer);
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) return invalid(source, `value ${bad} is ${values[bad]}; predictions must be finite`);
  if (labels !== undefined && values.length !== predictionValues(labels)) {
    return invalid(
      source,
      `${values.length} values; the job's ${labels.labels.length} labels of ${labels.classes} classes need ${predictionValues(labels)}`,
    );
  }
  return ok(values);
}

/** Stores one named set of predictions (checked against the labels when they are there already). */
export async function putFitPredictions(
  store: ObjectStore,
  id: string,
  key: string,
  bytes: Uint8Array,
): Promise<Result<{ key: string; values: number; created: boolean }, ObservationError>> {
  const source = `predictions '${key.slice(0, 130)}'`;
  if (!predictionsKeySchema.safeParse(key).success) {
    return invalid(
      source,
      'predictions keys are 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit',
    );
  }
  const checked = checkPredictionBytes(bytes, source, await readFitLabels(store, id));
  if (!checked.ok) return checked;
  const objectKey = jobKeys(id).predictions(key);
  const created = await store.putIfAbsent(objectKey, bytes);
  if (!created && !sameBytes((await store.get(objectKey)) as Uint8Array, bytes)) {
    return err(
      new ObservationError('PREDICTIONS_CONFLICT', `fit job '${id}': ${source} were uploaded with other values`),
    );
  }
  return ok({ key, values: checked.value.length, created });
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);

const predictionLines = (set: ObservationSet) => [...set.byKey.values()].filter((o) => o.predictions !== undefined);

const where = (o: StoredObservation) => `trajectory '${o.trajectory}' step ${o.step}`;

/**
 * Before a fit starts: every predictions reference of the set names uploaded predictions that
 * fit the uploaded labels; answers those labels (undefined when no line has predictions).
 */
export async function checkPredictionRefs(
  store: ObjectStore,
  id: string,
  set: ObservationSet,
): Promise<Result<FitLabels | undefined, ObservationError>> {
  const lines = predictionLines(set);
  if (lines.length === 0) return ok(undefined);
  const source = `fit job '${id}'`;
  const labels = await readFitLabels(store, id);
  if (labels === undefined) {
    return invalid(source, `${lines.length} lines name predictions, but no labels were uploaded to score them on`);
  }
  const issues: ObservationIssue[] = [];
  const checked = new Map<string, string | undefined>();
  for (const o of lines) {
    const key = o.predictions?.key as string;
    if (!checked.has(key)) {
      const bytes = await store.get(jobKeys(id).predictions(key));
      const problem =
        bytes === undefined
          ? 'were not uploaded'
          : checkPredictionBytes(bytes, key, labels).ok
            ? undefined
            : `do not fit the labels (${labels.labels.length} labels of ${labels.classes} classes)`;
      checked.set(key, problem);
    }
    const problem = checked.get(key);
    if (problem !== undefined) issues.push({ line: 0, reason: `${where(o)}: predictions '${key}' ${problem}` });
  }
  return issues.length > 0 ? err(failWith('PREDICTIONS_INVALID', source, issues)) : ok(labels);
}

export interface ScoringOutcome {
  /** The set with every scored line's metric filled in (lines that failed keep none). */
  set: ObservationSet;
  failures: { trajectory: string; step: number; code: string; message: string }[];
}

/** Queries per oracle call (one batch of messages on the evaluation queue). */
const SCORING_BATCH = 48;

/**
 * Scores the set's prediction lines with the registered evaluators they name (one oracle per
 * name). A line whose evaluation fails (after the oracle's retries) is left without a metric
 * and reported; an evaluator whose direction is not the job's fails the whole scoring.
 */
export async function scorePredictions(
  store: ObjectStore,
  spec: FitJobSpec,
  set: ObservationSet,
  oracleFor: FitOracleFactory,
  progress: ProgressReporter,
): Promise<Result<ScoringOutcome, ObservationError>> {
  const lines = predictionLines(set);
  const checked = await checkPredictionRefs(store, spec.id, set);
  if (!checked.ok) return checked;
  const byKey = new Map(set.byKey);
  const out: ScoringOutcome = { set: { ...set, byKey }, failures: [] };
  const labels = checked.value;
  if (labels === undefined) return ok(out);
  const trajectoryIds = new Map([...new Set(lines.map((o) => o.trajectory))].sort().map((t, i) => [t, i]));
  const direction = spec.metric.direction;
  const evaluators = [...new Set(lines.map((o) => o.predictions?.evaluator as string))].sort();
  progress.start(`scoring predictions (${evaluators.join(', ')})`, lines.length);
  let done = 0;
  try {
    for (const name of evaluators) {
      let oracle: MetricOracle;
      try {
        oracle = await oracleFor({ name, direction });
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        return invalid(
          `fit job '${spec.id}'`,
          `evaluator '${name}' cannot score here: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}`,
        );
      }
      try {
        await oracle.registerSplit('fit', splitOf(labels));
        const mine = lines.filter((o) => o.predictions?.evaluator === name);
        for (let start = 0; start < mine.length; start += SCORING_BATCH) {
          const batch = mine.slice(start, start + SCORING_BATCH);
          const queries: MetricQuery[] = [];
          for (const o of batch) {
            const bytes = (await store.get(jobKeys(spec.id).predictions(o.predictions?.key as string))) as Uint8Array;
            queries.push({
              jobId: spec.id,
              taskId: trajectoryIds.get(o.trajectory) as number,
              step: o.step,
              split: 'fit',
              scores: new Float32Array(bytes.slice().buffer),
            });
          }
          const results: Result<MetricValue, MetricError>[] = await oracle.evaluate(queries);
          for (let i = 0; i < batch.length; i++) {
            const o = batch[i] as StoredObservation;
            const r = results[i] as Result<MetricValue, MetricError>;
            if (!r.ok) {
              out.failures.push({
                trajectory: o.trajectory,
                step: o.step,
                code: r.error.code,
                message: r.error.message,
              });
              continue;
            }
            // The evaluator's own lower-is-better value tells its direction: it must be the job's.
            const expected = direction === 'maximize' ? 1 - r.value.value : r.value.value;
            if (Math.abs(expected - r.value.normalised) > 1e-9) {
              return invalid(
                `fit job '${spec.id}'`,
                `evaluator '${name}' does not ${direction} (its value ${r.value.value} is ${r.value.normalised} lower-is-better); create the job with the evaluator's direction`,
              );
            }
            byKey.set(JSON.stringify([o.trajectory, o.step]), { ...o, metric: r.value.value });
          }
          done += batch.length;
          progress.tick(done, out.failures.length > 0 ? `${out.failures.length} failed` : undefined);
        }
      } finally {
        await oracle.close?.();
      }
    }
  } finally {
    progress.end();
  }
  return ok(out);
}
