import { contextColumnNameSchema, MAX_CONTEXT_COLUMNS } from '../schemas/evaluation.js';
import { err, ok, type Result } from '../util/result.js';
import { DataError } from './errors.js';

/**
 * Per-row context a user supplies with a data set (`--context FILE`): named numeric columns with
 * one value per row of the data set as loaded (a9a: the train file's rows, then the test file's;
 * other files: line order). They travel as the data set's `context` (SparseDataset.context) and a
 * metric sees them sliced to the rows it scores (EvaluationInput.context, shared/metrics/evaluator.ts).
 */
export type RowContext = Readonly<Record<string, Float64Array>>;

/**
 * Parses a context file against a data set of `datasetRows` rows. Two forms, told apart by the
 * first non-blank character (`{`: JSON lines, anything else: CSV):
 *
 *   CSV with a header; the column `row` holds the 0-based row index, every other column is one
 *   context column:            row,amount,group
 *                              0,12.5,1
 *   JSON lines, one object per row, each with `row` and the same context keys:
 *                              {"row": 0, "amount": 12.5, "group": 1}
 *
 * Every row of the data set appears exactly once, in any order; every value is a finite number.
 * The first problem is an error naming the line (CONTEXT_MALFORMED, CONTEXT_VALUE,
 * CONTEXT_DUPLICATE, CONTEXT_UNKNOWN_ROW, CONTEXT_MISSING_ROW) and nothing is returned: a file
 * is used whole or not at all.
 */
export function parseRowContext(text: string, datasetRows: number, source = 'context'): Result<RowContext, DataError> {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lines = body.split(/\r?\n/);
  const first = body.trimStart();
  if (first === '') return fail('CONTEXT_MALFORMED', `${source}: the file is empty`);
  return first.startsWith('{') ? parseJsonLines(lines, datasetRows, source) : parseCsv(lines, datasetRows, source);
}

const fail = (code: ConstructorParameters<typeof DataError>[0], message: string, details?: unknown) =>
  err(new DataError(code, message, details));

/** Collects rows into columns; checks the row index and that every row comes once. */
class Columns {
  readonly values: Float64Array[];
  private readonly seen: Uint8Array;

  constructor(
    readonly names: string[],
    private readonly datasetRows: number,
    private readonly source: string,
    /** CSV fields are text to read as numbers; JSON values must be numbers already. */
    private readonly textual: boolean,
  ) {
    this.values = names.map(() => new Float64Array(datasetRows));
    this.seen = new Uint8Array(datasetRows);
  }

  /** The row's index slot, or the error for an index that is not a row of the data set or comes twice. */
  row(raw: unknown, where: string): Result<number, DataError> {
    const r = this.number(raw);
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0) {
      return fail('CONTEXT_UNKNOWN_ROW', `${this.source}: ${where}: row ${JSON.stringify(raw)} is not a row index`, {
        row: raw,
      });
    }
    if (r >= this.datasetRows) {
      return fail(
        'CONTEXT_UNKNOWN_ROW',
        `${this.source}: ${where}: row ${r} is not in the data set (it has ${this.datasetRows} rows, 0..${this.datasetRows - 1})`,
        { row: r },
      );
    }
    if (this.seen[r]) return fail('CONTEXT_DUPLICATE', `${this.source}: ${where}: row ${r} appears twice`, { row: r });
    this.seen[r] = 1;
    return ok(r);
  }

  value(raw: unknown, column: number, row: number, where: string): DataError | undefined {
    const v = this.number(raw);
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      const name = this.names[column] as string;
      return new DataError(
        'CONTEXT_VALUE',
        `${this.source}: ${where}: ${name} is ${JSON.stringify(raw)}, not a finite number`,
        { column: name, row },
      );
    }
    (this.values[column] as Float64Array)[row] = v;
    return undefined;
  }

  private number(raw: unknown): unknown {
    return this.textual && typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  }

  done(): Result<RowContext, DataError> {
    const missing = this.seen.indexOf(0);
    if (missing >= 0) {
      const count = this.seen.reduce((a, s) => a + (s ? 0 : 1), 0);
      return fail(
        'CONTEXT_MISSING_ROW',
        `${this.source}: row ${missing} of the data set has no context (${count} of ${this.datasetRows} rows are missing); every row needs one`,
        { row: missing, missing: count },
      );
    }
    return ok(Object.fromEntries(this.names.map((n, j) => [n, this.values[j] as Float64Array])));
  }
}

/** The context column names of a header (all but `row`), checked: valid, unique, at least one. */
function columnNames(names: string[], source: string, where: string): Result<string[], DataError> {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) return fail('CONTEXT_DUPLICATE', `${source}: ${where}: column '${name}' appears twice`);
    seen.add(name);
  }
  if (!seen.has('row')) return fail('CONTEXT_MALFORMED', `${source}: ${where}: no 'row' column (the row index)`);
  const columns = names.filter((n) => n !== 'row');
  if (columns.length === 0) return fail('CONTEXT_MALFORMED', `${source}: ${where}: no context columns besides 'row'`);
  if (columns.length > MAX_CONTEXT_COLUMNS) {
    return fail('CONTEXT_MALFORMED', `${source}: ${where}: ${columns.length} columns; at most ${MAX_CONTEXT_COLUMNS}`);
  }
  const bad = columns.find((c) => !contextColumnNameSchema.safeParse(c).success);
  if (bad !== undefined) {
    return fail(
      'CONTEXT_MALFORMED',
      `${source}: ${where}: column name ${JSON.stringify(bad)}: a letter or "_", then letters, digits, "_", "." or "-" (at most 64)`,
    );
  }
  return ok(columns);
}

function parseCsv(lines: string[], datasetRows: number, source: string): Result<RowContext, DataError> {
  const split = (line: string) => line.split(',').map((f) => f.trim().replace(/^"(.*)"$/, '$1'));
  const headerAt = lines.findIndex((l) => l.trim() !== '');
  const header = split(lines[headerAt] as string);
  const names = columnNames(header, source, `line ${headerAt + 1} (header)`);
  if (!names.ok) return names;
  const rowAt = header.indexOf('row');
  const columns = new Columns(names.value, datasetRows, source, true);
  const fieldOf = header.map((n) => names.value.indexOf(n));
  for (let i = headerAt + 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    const where = `line ${i + 1}`;
    const fields = split(line);
    if (fields.length !== header.length) {
      return fail(
        'CONTEXT_MALFORMED',
        `${source}: ${where}: ${fields.length} fields; the header has ${header.length}`,
        { line: i + 1 },
      );
    }
    const row = columns.row(fields[rowAt], where);
    if (!row.ok) return row;
    for (let f = 0; f < fields.length; f++) {
      const column = fieldOf[f] as number;
      if (column < 0) continue;
      const bad = columns.value(fields[f], column, row.value, where);
      if (bad) return err(bad);
    }
  }
  return columns.done();
}

function parseJsonLines(lines: string[], datasetRows: number, source: string): Result<RowContext, DataError> {
  let columns: Columns | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    const where = `line ${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return fail('CONTEXT_MALFORMED', `${source}: ${where}: not JSON: ${JSON.stringify(line.slice(0, 80))}`, {
        line: i + 1,
      });
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      return fail('CONTEXT_MALFORMED', `${source}: ${where}: expected an object {"row": ..., "name": value, ...}`);
    }
    const record = json as Record<string, unknown>;
    const keys = Object.keys(record);
    if (columns === undefined) {
      const names = columnNames(keys, source, where);
      if (!names.ok) return names;
      columns = new Columns(names.value, datasetRows, source, false);
    }
    const expected = columns.names;
    if (keys.length !== expected.length + 1 || expected.some((n) => !(n in record))) {
      const other = keys.filter((k) => k !== 'row' && !expected.includes(k));
      const absent = expected.filter((n) => !(n in record));
      return fail(
        'CONTEXT_MALFORMED',
        `${source}: ${where}: keys differ from the first line's (${[...absent.map((n) => `missing ${n}`), ...other.map((n) => `extra ${n}`)].join(', ') || 'no row'})`,
        { line: i + 1 },
      );
    }
    const row = columns.row(record.row, where);
    if (!row.ok) return row;
    for (let j = 0; j < expected.length; j++) {
      const bad = columns.value(record[expected[j] as string], j, row.value, where);
      if (bad) return err(bad);
    }
  }
  if (columns === undefined) return fail('CONTEXT_MALFORMED', `${source}: the file is empty`);
  return columns.done();
}
