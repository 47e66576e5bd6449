import { err, ok, type Result } from '../util/result.js';
import type { SparseDataset } from './dataset.js';
import { DataError } from './errors.js';

export interface LibsvmOptions {
  /** Number of features; inferred from the largest index when omitted. */
  features?: number;
  /** Raw label value that is the positive class (binary data); default: the larger of the two. */
  positiveLabel?: number;
  name?: string;
}

/** The largest feature index: columns are stored as int32 (0-based), so 2^31 - 1. */
export const MAX_INDEX = 2 ** 31 - 1;

/** A feature index as written: decimal digits, optionally signed (a sign is reported as out of range). */
const INTEGER = /^[+-]?\d+$/;

/**
 * Parses LIBSVM / svmlight text (`label idx:val idx:val ...`, 1-based indices).
 * Binary labels in any usual encoding ({-1,+1}, {0,1}, {1,2}, ...) map to 0/1 with the larger
 * raw value positive unless `positiveLabel` says otherwise; more than two distinct labels make a
 * multi-class data set with classes in ascending raw-label order. Values are stored as
 * float32: one beyond its range (`1e39`) is an error, as `inf` and `nan` are; feature indices
 * are 1 to 2^31 - 1. Every error names the line (`details.line`) and has a code:
 * LIBSVM_MALFORMED (syntax), LIBSVM_INDEX_OUT_OF_RANGE, LIBSVM_VALUE_OUT_OF_RANGE, LIBSVM_LABELS,
 * LIBSVM_EMPTY.
 */
export function parseLibsvm(text: string, options: LibsvmOptions = {}): Result<SparseDataset, DataError> {
  const name = options.name ?? 'libsvm';
  const rawLabels: number[] = [];
  const indptr: number[] = [0];
  const indices: number[] = [];
  const values: number[] = [];
  let maxIndex = 0;
  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    lineNo++;
    const line = text.slice(start, end).replace(/\r$/, '');
    start = end + 1;
    const hash = line.indexOf('#');
    const body = (hash >= 0 ? line.slice(0, hash) : line).trim();
    if (body === '') continue;
    const tokens = body.split(/\s+/);
    const label = Number(tokens[0]);
    if (!Number.isFinite(label)) {
      return err(
        new DataError('LIBSVM_MALFORMED', `${name}: line ${lineNo}: label '${tokens[0]}' is not a number`, {
          line: lineNo,
        }),
      );
    }
    let prev = 0;
    for (let i = 1; i < tokens.length; i++) {
      const tok = tokens[i] as string;
      const colon = tok.indexOf(':');
      const idxText = colon > 0 ? tok.slice(0, colon) : '';
      const valText = colon > 0 ? tok.slice(colon + 1) : '';
      const idx = INTEGER.test(idxText) ? Number(idxText) : Number.NaN;
      const val = valText === '' ? Number.NaN : Number(valText);
      if (Number.isNaN(idx) || !Number.isFinite(val)) {
        const what = Number.isNaN(idx)
          ? `index '${idxText}' is not an integer`
          : `value '${valText}' is not a finite number`;
        return err(
          new DataError(
            'LIBSVM_MALFORMED',
            `${name}: line ${lineNo}: token '${tok}' is not 'index:value' (${colon > 0 ? what : 'no colon'})`,
            { line: lineNo, token: tok },
          ),
        );
      }
      if (idx < 1 || idx > MAX_INDEX) {
        return err(
          new DataError(
            'LIBSVM_INDEX_OUT_OF_RANGE',
            `${name}: line ${lineNo}: feature index ${idxText} is out of range: indices are 1-based, from 1 to ${MAX_INDEX}`,
            { line: lineNo, token: tok },
          ),
        );
      }
      if (!Number.isFinite(Math.fround(val))) {
        return err(
          new DataError(
            'LIBSVM_VALUE_OUT_OF_RANGE',
            `${name}: line ${lineNo}: value ${valText} of feature ${idx} is beyond the float32 range (|x| < 3.4e38)`,
            { line: lineNo, token: tok },
          ),
        );
      }
      if (idx <= prev) {
        return err(
          new DataError(
            'LIBSVM_MALFORMED',
            `${name}: line ${lineNo}: feature indices must increase (${idx} after ${prev})`,
            { line: lineNo },
          ),
        );
      }
      prev = idx;
      if (options.features !== undefined && idx > options.features) {
        return err(
          new DataError(
            'LIBSVM_MALFORMED',
            `${name}: line ${lineNo}: feature index ${idx} exceeds the given feature count ${options.features}`,
            { line: lineNo },
          ),
        );
      }
      if (idx > maxIndex) maxIndex = idx;
      if (val !== 0) {
        indices.push(idx - 1);
        values.push(val);
      }
    }
    rawLabels.push(label);
    indptr.push(indices.length);
  }
  if (rawLabels.length === 0) return err(new DataError('LIBSVM_EMPTY', `${name}: no data rows`));

  const distinct = [...new Set(rawLabels)].sort((a, b) => a - b);
  let labels: Int32Array;
  let classes: number;
  if (distinct.length <= 2) {
    let positive = options.positiveLabel ?? (distinct[distinct.length - 1] as number);
    if (options.positiveLabel !== undefined && !distinct.includes(options.positiveLabel)) {
      return err(
        new DataError(
          'LIBSVM_LABELS',
          `${name}: positive label ${options.positiveLabel} does not occur (labels: ${distinct.join(', ')})`,
        ),
      );
    }
    if (distinct.length === 1 && options.positiveLabel === undefined) {
      // A single label: positive only if it is a conventional positive value.
      positive = (distinct[0] as number) > 0 ? (distinct[0] as number) : Number.NaN;
    }
    labels = Int32Array.from(rawLabels, (l) => (l === positive ? 1 : 0));
    classes = 2;
  } else {
    const index = new Map(distinct.map((l, i) => [l, i]));
    labels = Int32Array.from(rawLabels, (l) => index.get(l) as number);
    classes = distinct.length;
  }
  return ok({
    name,
    rows: rawLabels.length,
    features: options.features ?? maxIndex,
    indptr: Int32Array.from(indptr),
    indices: Int32Array.from(indices),
    values: Float32Array.from(values),
    labels,
    classes,
  });
}
