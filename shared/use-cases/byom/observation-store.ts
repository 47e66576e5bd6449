import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import type { ObservationIssue } from '../../schemas/observations.js';
import { err, ok, type Result } from '../../util/result.js';
import { observationBatchKey } from '../../storage/layout.js';
import {
  failWith,
  MAX_METRIC_PER_TRAJECTORY,
  ObservationError,
  parseObservationText,
  type StoredObservation,
} from './observation-batches.js';

/**
 * The observation batches of a fit job in the object store (`jobs/<id>/observations/<seq>.jsonl`,
 * storage/layout.ts): the set they make, first come first kept; a new batch checked against it
 * and added with a conditional create; the trajectories the fit reads from it.
 */
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
  listed?: readonly string[],
): Promise<ObservationSet> {
  const keys = listed ?? (await listBatches(store, prefix));
  const known = cache?.get(store, prefix);
  // A stored batch never changes: a cached set whose batches are the first of the listing only
  // needs the batches committed since.
  const reuse = known !== undefined && startsWith(keys, known.keys);
  const set: ObservationSet = reuse
    ? { ...known.set, byKey: new Map(known.set.byKey) }
    : { d: undefined, byKey: new Map(), batches: 0, next: 1 };
  for (const key of keys.slice(reuse ? known.keys.length : 0)) {
    mergeStoredBatch(set, (await getText(store, key)) ?? '', seqOf(prefix, key));
  }
  cache?.put(store, prefix, { keys: [...keys], set: { ...set, byKey: new Map(set.byKey) } });
  return set;
}

const listBatches = async (store: ObjectStore, prefix: string) =>
  (await store.list(prefix)).filter((k) => k.endsWith('.jsonl'));

const startsWith = (keys: readonly string[], head: readonly string[]) =>
  head.length <= keys.length && head.every((k, i) => k === keys[i]);

const sameKeys = (a: readonly string[], b: readonly string[]) => a.length === b.length && startsWith(a, b);

/** What a job's summary shows of its observations. */
export interface ObservationCounts {
  observations: number;
  trajectories: number;
  d: number | undefined;
  /** Lines scored by an evaluator when the fit runs. */
  predictionLines: number;
}

function countsOf(set: ObservationSet): ObservationCounts {
  const trajectories = new Set<string>();
  let predictionLines = 0;
  for (const o of set.byKey.values()) {
    trajectories.add(o.trajectory);
    if (o.predictions !== undefined) predictionLines++;
  }
  return { observations: set.byKey.size, trajectories: trajectories.size, d: set.d, predictionLines };
}

/**
 * The counts of a job's stored observations, for its summary (polled while a fit runs).
 *
 * Never stale, across processes too: the batches are listed on every call (one folder read on
 * the file store, one LIST on S3, both consistent after a write returns), and a batch is
 * created once under a new key and never changed (`putIfAbsent`), so the listed keys determine
 * the counts. The counts are cached with the keys they were computed from and reused only for
 * the same keys; a listing with more keys reads only the batches added since, whoever wrote
 * them. So a GET costs one listing instead of copying and walking every observation.
 */
export async function observationCounts(
  store: ObjectStore,
  prefix: string,
  cache: ObservationSetCache,
): Promise<ObservationCounts> {
  const keys = await listBatches(store, prefix);
  const known = cache.get(store, prefix);
  if (known !== undefined && sameKeys(keys, known.keys)) {
    known.counts ??= countsOf(known.set);
    return known.counts;
  }
  const set = await loadObservationSet(store, prefix, cache, keys);
  const counts = countsOf(set);
  const entry = cache.get(store, prefix);
  if (entry !== undefined && sameKeys(keys, entry.keys)) entry.counts = counts;
  return counts;
}

interface CacheEntry {
  keys: string[];
  set: ObservationSet;
  /** countsOf(set), once asked for. */
  counts?: ObservationCounts;
}

/**
 * The observation sets a server has read, by store and prefix (at most `max`, least recently
 * used out first): a job's summary then costs one listing instead of parsing every batch.
 */
export class ObservationSetCache {
  private readonly entries = new Map<string, CacheEntry>();
  constructor(private readonly max = 32) {}

  get(store: ObjectStore, prefix: string): CacheEntry | undefined {
    const id = `${store.location}\n${prefix}`;
    const hit = this.entries.get(id);
    if (hit !== undefined) {
      this.entries.delete(id);
      this.entries.set(id, hit);
    }
    return hit;
  }

  put(store: ObjectStore, prefix: string, entry: CacheEntry): void {
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
  let conflicts = 0;
  batch.forEach((o, i) => {
    const line = lineNumbers?.[i] ?? i + 1;
    if (set.d !== undefined && o.phi.length !== set.d) {
      issues.push({ line, reason: `phi has ${o.phi.length} entries, the stored observations have ${set.d}` });
      return;
    }
    const existing = set.byKey.get(keyOf(o));
    if (existing === undefined) fresh.push(o);
    else if (sameObservation(existing, o)) duplicates++;
    else {
      conflicts++;
      issues.push({ line, reason: `trajectory '${o.trajectory}' step ${o.step} is already stored with other values` });
    }
  });
  if (issues.length > 0) {
    // Only conflicts with stored observations: the batch is valid, it disagrees with the job.
    return err(
      failWith(conflicts === issues.length ? 'OBSERVATIONS_CONFLICT' : 'OBSERVATIONS_INVALID', source, issues),
    );
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
