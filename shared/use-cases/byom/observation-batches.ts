import {
  MAX_PHI_D,
  type ObservationIssue,
  type ObservationLine,
  observationLineSchema,
  type PredictionsRef,
} from '../../schemas/observations.js';
import { domainErrorClass, err, ok, type Result } from '../../util/result.js';
import { issueLine } from '../../schemas/zod-issue.js';

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

export const ObservationError = domainErrorClass<ObservationErrorCode>('ObservationError');
export type ObservationError = InstanceType<typeof ObservationError>;

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

const zodReason = (e: { issues: { path: PropertyKey[]; message: string }[] }): string => issueLine(e);

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
