import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { fromDense, type SparseDataset } from '../data/dataset.js';
import { DataError } from '../data/errors.js';
import { parseLibsvm } from '../data/libsvm.js';
import { concatDatasets } from '../data/split.js';
import { imagePackages, loadImageDataset } from './image-cache.fs.js';
import { err, ok, type Result } from '../util/result.js';

/** The folder with the data shipped in the package (A9A), found from this file upwards. */
export function bundledDataDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'data', 'a9a.train.libsvm.gz'))) return join(dir, 'data');
    dir = dirname(dir);
  }
  throw new Error('bundled data folder (data/a9a.train.libsvm.gz) not found');
}

async function readText(path: string): Promise<Result<string, DataError>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return err(
      new DataError(
        'DATASET_NOT_FOUND',
        `dataset file '${path}' ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`,
      ),
    );
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      return err(
        new DataError('LIBSVM_MALFORMED', `dataset file '${path}' is not valid gzip: ${(e as Error).message}`),
      );
    }
  }
  return ok(bytes.toString('utf8'));
}

export interface LoadOptions {
  features?: number;
  positiveLabel?: number;
  /** The data cache folder holding fetched image sets (fashion-mnist); default defaultDataDir(). */
  dataDir?: string;
}

/** The default data cache: `.cache/data` in the package's root (the CLI's METRICOPT_DATA_DIR overrides it). */
export function defaultDataDir(): string {
  return join(dirname(bundledDataDir()), '.cache', 'data');
}

/** The 8x8 digits CSV (64 pixels 0..16, then the class 0..9): 1,797 images, 10 classes. */
export function parseDigitsCsv(text: string): Result<SparseDataset, DataError> {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const x = new Float32Array(lines.length * 64);
  const labels = new Int32Array(lines.length);
  for (const [i, line] of lines.entries()) {
    const cells = line.split(',').map(Number);
    if (cells.length !== 65 || cells.some((c) => !Number.isFinite(c))) {
      return err(new DataError('LIBSVM_MALFORMED', `digits: line ${i + 1}: expected 65 numbers`));
    }
    x.set(cells.slice(0, 64), i * 64);
    labels[i] = cells[64] as number;
  }
  return ok(fromDense('digits', x, 64, labels, 10));
}

/**
 * `a9a` (bundled: the train and test files together, 48,842 rows), `digits` (the 8x8 digits
 * beside the checkout, ../shared/data, or METRICOPT_DIGITS), `fashion-mnist` (from the data
 * cache that `metricopt data fetch fashion-mnist` fills: 70,000 images pooled to 14 x 14), or a
 * LIBSVM path (plain or .gz).
 */
export async function loadDataset(spec: string, options: LoadOptions = {}): Promise<Result<SparseDataset, DataError>> {
  if (imagePackages[spec]) return loadImageDataset(spec, options.dataDir ?? defaultDataDir());
  if (spec === 'digits') {
    const candidates = [
      join(bundledDataDir(), 'digits8x8.csv.gz'),
      join(bundledDataDir(), '..', '..', 'shared', 'data', 'digits8x8.csv.gz'),
    ];
    const found = candidates.find((c) => existsSync(c));
    if (!found)
      return err(new DataError('DATASET_NOT_FOUND', `digits8x8.csv.gz not found (looked in ${candidates.join(', ')})`));
    const text = await readText(found);
    return text.ok ? parseDigitsCsv(text.value) : text;
  }
  if (spec === 'a9a') {
    const dir = bundledDataDir();
    const parts: SparseDataset[] = [];
    for (const file of ['a9a.train.libsvm.gz', 'a9a.test.libsvm.gz']) {
      const text = await readText(join(dir, file));
      if (!text.ok) return text;
      const parsed = parseLibsvm(text.value, { ...options, features: options.features ?? 123, name: 'a9a' });
      if (!parsed.ok) return parsed;
      parts.push(parsed.value);
    }
    return ok(concatDatasets('a9a', parts));
  }
  const text = await readText(spec);
  if (!text.ok) return text;
  const name = basename(spec)
    .replace(/\.gz$/, '')
    .replace(/\.(libsvm|svm|txt)$/, '');
  const parsed = parseLibsvm(text.value, { ...options, name });
  if (!parsed.ok) return parsed;
  if (parsed.value.rows < 50) {
    return err(
      new DataError(
        'DATASET_TOO_SMALL',
        `dataset '${spec}' has ${parsed.value.rows} rows; at least 50 are needed for a 70/10/20 split`,
      ),
    );
  }
  return parsed;
}
