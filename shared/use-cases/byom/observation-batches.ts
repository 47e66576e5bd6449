import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import {
  MAX_PHI_D,
  type ObservationIssue,
  type ObservationLine,
  observationLineSchema,
  type PredictionsRef,
} from '../../schemas/observations.js';
import { DomainError, err, ok, type Result } from '../../util/result.js';
import { observationBatchKey } from '../../storage/layout.js';

/**
 * Observation files and batches (shared/schemas/observations.ts): parsing with every bad line
 * named, and the batches of a fit job in the object store, merged idempotently per
 * (trajectory, step). Nothing is written unless the whole batch is valid.
 */
export type ObservationErrorCode =
  /** One or more lines are not valid observations (details.issues: line and reason). */
  | 'OBSERVATIONS_INVALID'
  /** No observation lines at all. */
  | 'OBSERVATIONS_EMPTY'
  /** The file or body is larger than the limit. */
  | 'OBSERVATIONS_TOO_LARGE'
  /** A (trajectory, step) already stored with other content. */
  | 'OBSERVATIONS_CONFLICT'
  /** The whole set cannot be fitted (too few trajectories, a trajectory with < 2 metric values). */
  | 'OBSERVATIONS_INSUFFICIENT'
  /** Lines name predictions to be scored, but this runner has no evaluators to score them with. */
  | 'OBSERVATION_PREDICTIONS_UNSUPPORTED'
  /** Predictions or labels of a fit job are missing, malformed, or do not fit each other. */
  | 'PREDICTIONS_INVALID'
  /** Predictions or labels already uploaded under that name with other content. */
  | 'PREDICTIONS_CONFLICT';

export class ObservationError extends DomainError {
  constructor(code: ObservationErrorCode, message: string, details?: { issues: ObservationIssue[] }) {
    super(code, message, details);
    this.name = 'ObservationError';
  }
}

/** At most this many issues are listed in an error's details (the message shows the first three). */
export const MAX_LISTED_ISSUES = 100;
/** The GP is cubic in the metric observations of a trajectory. */
export const MAX_METRIC_PER_TRAJECTORY = 512;

/** One stored observation (phi as float32, as it is trained and served). */
export interface StoredObservation {
  trajectory: string;
  step: number;
  phi: Float32Array;
  metric?: number;
  /** Predictions to be scored when the fit runs, instead of a metric value. */
  predictions?: PredictionsRef;
}

export function failWith(code: ObservationErrorCode, source: string, issues: ObservationIssue[]): ObservationError {
  const shown = issues
    .slice(0, 3)
    .map((i) => (i.line > 0 ? `line ${i.line}: ${i.reason}` : i.reason))
    .join('; ');
  const more = issues.length > 3 ? ` (and ${issues.length - 3} more)` : '';
  return new ObservationError(code, `${source}: ${shown}${more}`, { issues: issues.slice(0, MAX_LISTED_ISSUES) });
}

function zodReason(e: { issues: { path: PropertyKey[]; message: string }[] }): string {
  const issue = e.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.length ? `${issue.path.map(String).join('.')}: ` : '';
  return `${path}${issue.message}`;
}

/**
 * Checks parsed lines (each with its 1-based line number): the schema, finite numbers, one d,
 * no (trajectory, step) twice. `expectD` is the d of observations already stored.
 */
export function checkObservationLines(
  entries: { line: number; value: unknown }[],
  source: string,
  expectD?: number,
): Result<StoredObservation[], ObservationError> {
  const issues: ObservationIssue[] = [];
  const out: StoredObservation[] = [];
  const seen = new Map<string, number>();
  let d = expectD;
  for (const { line, value } of entries) {
    const parsed = observationLineSchema.safeParse(value);
    if (!parsed.success) {
      issues.push({ line, reason: zodReason(parsed.error) });
      continue;
    }
    const o: ObservationLine = parsed.data;
    const bad = o.phi.findIndex((v) => !Number.isFinite(v) || Math.abs(v) > 3.4e38);
    if (bad >= 0) {
      issues.push({ line, reason: `phi.${bad} is not a finite float32 number` });
      continue;
    }
    if (o.metric !== undefined && !Number.isFinite(o.metric)) {
      issues.push({ line, reason: 'metric is not a finite number' });
      continue;
    }
    if (d === undefined) d = o.phi.length;
    else if (o.phi.length !== d) {
      issues.push({
        line,
        reason: `phi has ${o.phi.length} entries, ${expectD === undefined ? 'the first line has' : 'the stored observations have'} ${d}`,
      });
      continue;
    }
    const key = JSON.stringify([o.trajectory, o.step]);
    const first = seen.get(key);
    if (first !== undefined) {
      issues.push({ line, reason: `trajectory '${o.trajectory}' step ${o.step} already appears on line ${first}` });
      continue;
    }
    seen.set(key, line);
    const stored: StoredObservation = { trajectory: o.trajectory, step: o.step, phi: Float32Array.from(o.phi) };
    if (o.metric !== undefined) stored.metric = o.metric;
    if (o.predictions !== undefined) stored.predictions = o.predictions;
    out.push(stored);
  }
  if (issues.length > 0) return err(failWith('OBSERVATIONS_INVALID', source, issues));
  if (out.length === 0) return err(new ObservationError('OBSERVATIONS_EMPTY', `${source}: no observation lines`));
  return ok(out);
}

/** The longest line an observation can take (phi of MAX_PHI_D numbers, names, a metric), in characters. */
export const MAX_LINE_CHARS = 64 * 1024 + MAX_PHI_D * 32;
/** An observation line holds at most 3 arrays and objects (the line, phi, predictions), 2 deep. */
const MAX_LINE_CONTAINERS = 3;

/**
 * Whether a line holds more arrays and objects than an observation can (counted outside
 * strings, without parsing): such a line is refused before JSON.parse, which would otherwise
 * build whatever nesting it is sent (the JSON routes bound theirs the same way, body.ts).
 */
function overNested(raw: string): boolean {
  let containers = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if ((c === 91 || c === 123) && ++containers > MAX_LINE_CONTAINERS) return true;
  }
  return false;
}

/** Each non-blank line parsed as JSON, with its 1-based number; the lines that are not JSON as issues. */
function jsonLines(text: string): { entries: { line: number; value: unknown }[]; issues: ObservationIssue[] } {
  const entries: { line: number; value: unknown }[] = [];
  const issues: ObservationIssue[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === '') continue;
    if (raw.length > MAX_LINE_CHARS) {
      issues.push({
        line: i + 1,
        reason: `${raw.length} characters, longer than an observation line (${MAX_LINE_CHARS})`,
      });
      continue;
    }
    if (overNested(raw)) {
      issues.push({
        line: i + 1,
        reason: `nested deeper than an observation line (more than ${MAX_LINE_CONTAINERS} arrays and objects)`,
      });
      continue;
    }
    try {
      entries.push({ line: i + 1, value: JSON.parse(raw) });
    } catch (e) {
      issues.push({ line: i + 1, reason: `not JSON (${(e as Error).message.slice(0, 80)})` });
    }
  }
  return { entries, issues };
}

/** JSON lines: blank lines are skipped, every other line is one observation. */
export function parseObservationText(
  text: string,
  source: string,
  expectD?: number,
): Result<StoredObservation[], ObservationError> {
  const { entries, issues } = jsonLines(text);
  if (issues.length > 0) {
    // Report the lines that are not JSON together with the ones that fail the checks.
    const checked = checkObservationLines(entries, source, expectD);
    const more = checked.ok ? [] : ((checked.error.details as { issues: ObservationIssue[] })?.issues ?? []);
    return err(
      failWith(
        'OBSERVATIONS_INVALID',
        source,
        [...issues, ...more].sort((a, b) => a.line - b.line),
      ),
    );
  }
  return checkObservationLines(entries, source, expectD);
}

/**
 * The binary form: a little-endian uint32 byte length L, then L bytes of JSON lines without
 * `phi` (`{"trajectory", "step", "metric"?}`), then n x d float32 phi values (little-endian,
 * row-major; d = values / n).
 */
export function parseObservationBinary(
  bytes: Uint8Array,
  source: string,
  expectD?: number,
): Result<StoredObservation[], ObservationError> {
  const fail = (reason: string) => err(failWith('OBSERVATIONS_INVALID', source, [{ line: 0, reason }]));
  if (bytes.byteLength < 4) return fail('binary body: shorter than its 4-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0, true);
  if (4 + length > bytes.byteLength) return fail(`binary body: header of ${length} bytes runs past the body`);
  const text = new TextDecoder().decode(bytes.subarray(4, 4 + length));
  const rest = bytes.byteLength - 4 - length;
  if (rest % 4 !== 0) return fail(`binary body: ${rest} bytes of phi is not a whole number of float32 values`);
  const { entries: meta, issues } = jsonLines(text);
  if (issues.length > 0) return err(failWith('OBSERVATIONS_INVALID', source, issues));
  if (meta.length === 0) return err(new ObservationError('OBSERVATIONS_EMPTY', `${source}: no observation lines`));
  const values = rest / 4;
  if (values % meta.length !== 0 || values === 0) {
    return fail(`binary body: ${values} float32 values do not divide into ${meta.length} rows`);
  }
  const d = values / meta.length;
  if (d > MAX_PHI_D) return fail(`binary body: d = ${d} is more than ${MAX_PHI_D}`);
  const copy = bytes.slice(4 + length);
  const phis = new Float32Array(copy.buffer, 0, values);
  const entries = meta.map(({ line, value }, r) => ({
    line,
    value:
      value !== null && typeof value === 'object' && !Array.isArray(value)
        ? { ...value, phi: Array.from(phis.subarray(r * d, (r + 1) * d)) }
        : value,
  }));
  return checkObservationLines(entries, source, expectD);
}

// ---------------------------------------------------------------------------------------------
// The batches of a fit job in the object store.

const lineOf = (o: StoredObservation) =>
  JSON.stringify({
    trajectory: o.trajectory,
    step: o.step,
    phi: Array.from(o.phi),
    ...(o.metric === undefined ? {} : { metric: o.metric }),
    ...(o.predictions === undefined ? {} : { predictions: o.predictions }),
  });

const sameObservation = (a: StoredObservation, b: StoredObservation) =>
  a.metric === b.metric &&
  a.predictions?.evaluator === b.predictions?.evaluator &&
  a.predictions?.key === b.predictions?.key &&
  a.phi.length === b.phi.length &&
  a.phi.every((v, j) => v === b.phi[j]);

/** Every stored observation of a job, keyed by (trajectory, step); batches read in order. */
export interface ObservationSet {
  d: number | undefined;
  byKey: Map<string, StoredObservation>;
  batches: number;
  /** The sequence number the next batch is committed under (one past the highest stored). */
  next: number;
}

const keyOf = (o: { trajectory: string; step: number }) => JSON.stringify([o.trajectory, o.step]);
const seqOf = (prefix: string, key: string) => Number(key.slice(prefix.length, -'.jsonl'.length));

/** Adds one stored batch to a set (first come first kept). */
function mergeStoredBatch(set: ObservationSet, text: string, seq: number): void {
  // Every stored batch was checked against the ones before it when it was committed; the name
  // given here is what a client may see, so it is never the storage key.
  const parsed = parseObservationText(text, `stored batch ${seq}`, set.d);
  if (!parsed.ok) throw parsed.error;
  for (const o of parsed.value) {
    set.d ??= o.phi.length;
    if (!set.byKey.has(keyOf(o))) set.byKey.set(keyOf(o), o);
  }
  set.batches++;
  set.next = Math.max(set.next, seq + 1);
}

/** Reads and merges a job's batches (each was checked when it was written). */
export async function loadObservationSet(
  store: ObjectStore,
  prefix: string,
  cache?: ObservationSetCache,
): Promise<ObservationSet> {
  const keys = (await store.list(prefix)).filter((k) => k.endsWith('.jsonl'));
  const known = cache?.get(store, prefix);
  // A stored batch never changes: a cached set whose batches are the first of the listing only
  // needs the batches committed since.
  const reuse = known !== undefined && known.keys.length <= keys.length && known.keys.every((k, i) => k === keys[i]);
  const set: ObservationSet = reuse
    ? { ...known.set, byKey: new Map(known.set.byKey) }
    : { d: undefined, byKey: new Map(), batches: 0, next: 1 };
  for (const key of keys.slice(reuse ? known.keys.length : 0)) {
    mergeStoredBatch(set, (await getText(store, key)) ?? '', seqOf(prefix, key));
  }
  cache?.put(store, prefix, { keys, set: { ...set, byKey: new Map(set.byKey) } });
  return set;
}

/**
 * The observation sets a server has read, by store and prefix (at most `max`, least recently
 * used out first): a job's summary then costs one listing instead of parsing every batch.
 */
export class ObservationSetCache {
  private readonly entries = new Map<string, { keys: string[]; set: ObservationSet }>();
  constructor(private readonly max = 32) {}

  get(store: ObjectStore, prefix: string): { keys: string[]; set: ObservationSet } | undefined {
    const id = `${store.location}\n${prefix}`;
    const hit = this.entries.get(id);
    if (hit !== undefined) {
      this.entries.delete(id);
      this.entries.set(id, hit);
    }
    return hit;
  }

  put(store: ObjectStore, prefix: string, entry: { keys: string[]; set: ObservationSet }): void {
    const id = `${store.location}\n${prefix}`;
    this.entries.delete(id);
    this.entries.set(id, entry);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }
}

export interface BatchOutcome {
  /** New (trajectory, step) observations written. */
  accepted: number;
  /** Observations already stored with the same content (a retried upload), not counted again. */
  duplicates: number;
  /** Observations stored in all. */
  total: number;
  trajectories: number;
  d: number;
}

/** A batch checked against a set: its new observations, or the lines that conflict with it. */
function checkAgainst(
  set: ObservationSet,
  batch: readonly StoredObservation[],
  source: string,
  lineNumbers?: readonly number[],
): Result<{ fresh: StoredObservation[]; duplicates: number }, ObservationError> {
  const issues: ObservationIssue[] = [];
  const fresh: StoredObservation[] = [];
  let duplicates = 0;
  batch.forEach((o, i) => {
    const line = lineNumbers?.[i] ?? i + 1;
    if (set.d !== undefined && o.phi.length !== set.d) {
      issues.push({ line, reason: `phi has ${o.phi.length} entries, the stored observations have ${set.d}` });
      return;
    }
    const existing = set.byKey.get(keyOf(o));
    if (existing === undefined) fresh.push(o);
    else if (sameObservation(existing, o)) duplicates++;
    else
      issues.push({ line, reason: `trajectory '${o.trajectory}' step ${o.step} is already stored with other values` });
  });
  if (issues.length > 0) {
    const conflict = issues.every((i) => i.reason.endsWith('other values'));
    return err(failWith(conflict ? 'OBSERVATIONS_CONFLICT' : 'OBSERVATIONS_INVALID', source, issues));
  }
  return ok({ fresh, duplicates });
}

/**
 * Adds a checked batch to a job: only its new (trajectory, step) observations are written, as
 * one new batch object; a (trajectory, step) stored with other content, or another d, fails
 * the whole batch and writes nothing.
 *
 * Safe under concurrent uploaders: batches are numbered densely and each is committed with a
 * conditional create (`putIfAbsent`, S3 `If-None-Match: *`) under the next free number. An
 * uploader that loses the race for a number reads the batch that won it, checks its own batch
 * again against it, and tries the number after; so every committed batch was checked against
 * every batch before it, and two concurrent batches either both land or the later one is refused.
 */
export async function addObservationBatch(
  store: ObjectStore,
  prefix: string,
  batch: readonly StoredObservation[],
  source: string,
  lineNumbers?: readonly number[],
  cache?: ObservationSetCache,
): Promise<Result<BatchOutcome, ObservationError>> {
  const set = await loadObservationSet(store, prefix, cache);
  for (let attempt = 0; ; attempt++) {
    const checked = checkAgainst(set, batch, source, lineNumbers);
    if (!checked.ok) return checked;
    const { fresh, duplicates } = checked.value;
    const seq = set.next;
    if (
      fresh.length === 0 ||
      (await store.putIfAbsent(observationBatchKey(prefix, seq), `${fresh.map(lineOf).join('\n')}\n`))
    ) {
      for (const o of fresh) set.byKey.set(keyOf(o), o);
      const d = set.d ?? (batch[0] as StoredObservation).phi.length;
      return ok({
        accepted: fresh.length,
        duplicates,
        total: set.byKey.size,
        trajectories: new Set([...set.byKey.values()].map((o) => o.trajectory)).size,
        d,
      });
    }
    // Another uploader committed batch `seq` first. On S3 a conditional write still in flight
    // answers 409 and its object may not be readable yet: wait for it and read it.
    const text = await getText(store, observationBatchKey(prefix, seq));
    if (text !== undefined) mergeStoredBatch(set, text, seq);
    else await new Promise((r) => setTimeout(r, Math.min(200, 5 * 2 ** Math.min(attempt, 6))));
  }
}

/** The set with a batch added in memory (first come first kept, as the store keeps them); nothing is written. */
export function withBatch(set: ObservationSet, batch: readonly StoredObservation[]): ObservationSet {
  const byKey = new Map(set.byKey);
  for (const o of batch) if (!byKey.has(keyOf(o))) byKey.set(keyOf(o), o);
  return { d: set.d ?? batch[0]?.phi.length, byKey, batches: set.batches + 1, next: set.next + 1 };
}

/** One trajectory's observations, ordered by step. */
export interface RecordedTrajectory {
  name: string;
  steps: number[];
  phis: Float32Array;
  /** [step, metric in its natural direction] where it was observed. */
  metric: [number, number][];
}

/**
 * The whole set as trajectories, checked for fitting: at least two trajectories, each with at
 * least two (and at most MAX_METRIC_PER_TRAJECTORY) metric observations. Lines with predictions
 * not scored yet count as observations when `pending` is 'count' (the check before a fit
 * starts), and are left out otherwise (the fit takes the values they were scored to).
 */
export function trajectoriesOf(
  set: ObservationSet,
  source: string,
  pending: 'count' | 'skip' = 'skip',
): Result<RecordedTrajectory[], ObservationError> {
  const d = set.d;
  if (d === undefined || set.byKey.size === 0) {
    return err(new ObservationError('OBSERVATIONS_EMPTY', `${source}: no observations uploaded`));
  }
  const groups = new Map<string, StoredObservation[]>();
  for (const o of set.byKey.values()) {
    const list = groups.get(o.trajectory) ?? [];
    list.push(o);
    groups.set(o.trajectory, list);
  }
  const issues: ObservationIssue[] = [];
  const out: RecordedTrajectory[] = [];
  for (const name of [...groups.keys()].sort()) {
    const list = (groups.get(name) as StoredObservation[]).sort((a, b) => a.step - b.step);
    const metric = list
      .filter((o) => o.metric !== undefined || (pending === 'count' && o.predictions !== undefined))
      .map((o) => [o.step, o.metric ?? Number.NaN] as [number, number]);
    if (metric.length < 2) {
      issues.push({
        line: 0,
        reason: `trajectory '${name}' has ${metric.length} metric observation(s); the GP needs at least 2`,
      });
      continue;
    }
    if (metric.length > MAX_METRIC_PER_TRAJECTORY) {
      issues.push({
        line: 0,
        reason: `trajectory '${name}' has ${metric.length} metric observations; at most ${MAX_METRIC_PER_TRAJECTORY}`,
      });
      continue;
    }
    const phis = new Float32Array(list.length * d);
    list.forEach((o, k) => phis.set(o.phi, k * d));
    out.push({ name, steps: list.map((o) => o.step), phis, metric });
  }
  if (issues.length > 0) return err(failWith('OBSERVATIONS_INSUFFICIENT', source, issues));
  if (out.length < 2) {
    return err(
      failWith('OBSERVATIONS_INSUFFICIENT', source, [
        { line: 0, reason: `${out.length} trajectory; a fit needs at least 2 (one is held out to measure it)` },
      ]),
    );
  }
  return ok(out);
}
