import type { EvaluationInput } from '../../ports/evaluator.port.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { EvaluationMessage, PayloadRef } from '../../schemas/evaluation.js';

/**
 * The input of a queued metric query, read from the store: predictions and embeddings (inline or
 * by key, per query) and the split's labels, rows and context, which are content-addressed, so
 * a worker keeps them in a process-wide cache. A missing or malformed payload is a coded value,
 * never a throw.
 */

export type LoadedInput =
  | { ok: true; value: EvaluationInput }
  | { ok: false; code: 'INPUT_MISSING' | 'METRIC_INPUT_INVALID'; reason: string };

type Loaded<T> = { ok: true; value: T } | Extract<LoadedInput, { ok: false }>;

/** A split's labels, rows and context: written once per job and split, never changed. */
const splitCache = new Map<string, Int32Array | Float64Array>();

async function loadBytes(store: ObjectStore, ref: PayloadRef): Promise<Uint8Array | undefined> {
  if ('inline' in ref) return Uint8Array.from(atob(ref.inline), (c) => c.charCodeAt(0));
  return store.get(ref.key);
}

/** Copies when the bytes are not aligned to the element size (a Buffer slice of a shared pool). */
function view<T extends Float32Array | Int32Array | Float64Array>(
  bytes: Uint8Array,
  size: 4 | 8,
  make: (b: ArrayBuffer, o: number, n: number) => T,
) {
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return make(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / size);
}

/** One of a split's inputs, cached per store and key (they are content-addressed). */
async function loadSplitInput<T extends Int32Array | Float64Array>(
  store: ObjectStore,
  ref: PayloadRef,
  what: string,
  size: 4 | 8,
  make: (b: ArrayBuffer, o: number, n: number) => T,
): Promise<Loaded<T>> {
  const cacheKey = 'key' in ref ? `${store.location}\n${ref.key}` : undefined;
  const cached = cacheKey === undefined ? undefined : (splitCache.get(cacheKey) as T | undefined);
  if (cached) return { ok: true, value: cached };
  const bytes = await loadBytes(store, ref);
  if (!bytes) return { ok: false, code: 'INPUT_MISSING', reason: `${what} '${refName(ref)}' not found` };
  if (bytes.byteLength % size !== 0) {
    const type = size === 4 ? 'int32' : 'float64';
    return {
      ok: false,
      code: 'METRIC_INPUT_INVALID',
      reason: `${what}: ${bytes.byteLength} bytes is not ${type} data`,
    };
  }
  const value = view(bytes, size, make);
  if (cacheKey !== undefined) {
    if (splitCache.size >= 96) splitCache.delete(splitCache.keys().next().value as string);
    splitCache.set(cacheKey, value);
  }
  return { ok: true, value };
}

const int32 = (b: ArrayBuffer, o: number, n: number) => new Int32Array(b, o, n);
const float64 = (b: ArrayBuffer, o: number, n: number) => new Float64Array(b, o, n);

export async function loadInput(store: ObjectStore, msg: EvaluationMessage): Promise<LoadedInput> {
  const loadedLabels = await loadSplitInput(store, msg.labels, 'labels', 4, int32);
  if (!loadedLabels.ok) return loadedLabels;
  const labels = loadedLabels.value;
  const bytes = await loadBytes(store, msg.predictions);
  if (!bytes) {
    return { ok: false, code: 'INPUT_MISSING', reason: `predictions '${refName(msg.predictions)}' not found` };
  }
  if (bytes.byteLength % 4 !== 0) {
    return {
      ok: false,
      code: 'METRIC_INPUT_INVALID',
      reason: `predictions: ${bytes.byteLength} bytes is not float32 data`,
    };
  }
  const scores = view(bytes, 4, (b, o, n) => new Float32Array(b, o, n));
  const expected = msg.classes === 2 ? labels.length : labels.length * msg.classes;
  if (scores.length !== expected) {
    return {
      ok: false,
      code: 'METRIC_INPUT_INVALID',
      reason: `predictions: ${scores.length} scores for ${labels.length} labels and ${msg.classes} classes (expected ${expected})`,
    };
  }
  const input: { -readonly [K in keyof EvaluationInput]: EvaluationInput[K] } = {
    scores,
    labels,
    classes: msg.classes,
  };
  if (msg.rows) {
    // A length other than the labels' is the checked evaluator's METRIC_INPUT_INVALID.
    const rows = await loadSplitInput(store, msg.rows, 'rows', 4, int32);
    if (!rows.ok) return rows;
    input.rows = rows.value;
  }
  if (msg.context) {
    const data = await loadSplitInput(store, msg.context.data, 'context', 8, float64);
    if (!data.ok) return data;
    const { columns } = msg.context;
    const n = labels.length;
    if (data.value.length !== columns.length * n) {
      return {
        ok: false,
        code: 'METRIC_INPUT_INVALID',
        reason: `context: ${data.value.length} values for ${columns.length} columns of ${n} rows`,
      };
    }
    input.context = Object.fromEntries(columns.map((c, j) => [c, data.value.subarray(j * n, (j + 1) * n)]));
  }
  if (msg.embeddings) {
    // Per query, never cached. A length other than labels x dim is the checked evaluator's
    // METRIC_INPUT_INVALID (as in process).
    const data = await loadBytes(store, msg.embeddings.data);
    if (!data) {
      return { ok: false, code: 'INPUT_MISSING', reason: `embeddings '${refName(msg.embeddings.data)}' not found` };
    }
    if (data.byteLength % 4 !== 0) {
      return {
        ok: false,
        code: 'METRIC_INPUT_INVALID',
        reason: `embeddings: ${data.byteLength} bytes is not float32 data`,
      };
    }
    input.embeddings = { dim: msg.embeddings.dim, values: view(data, 4, (b, o, n) => new Float32Array(b, o, n)) };
  }
  return { ok: true, value: input };
}

function refName(ref: PayloadRef): string {
  return 'key' in ref ? ref.key : '(inline)';
}
