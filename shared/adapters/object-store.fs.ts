import { link, mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ObjectStore } from '../ports/object-store.port.js';

/** The embedded object store: one file per key under a root folder; writes are atomic renames. */
export class FsObjectStore implements ObjectStore {
  readonly root: string;
  readonly location: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.location = pathToFileURL(this.root).href;
  }

  private path(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').some((p) => p === '..' || p === '.' || p === '')) {
      throw new Error(`FsObjectStore: invalid key '${key}'`);
    }
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(tmp, body);
    await rename(tmp, target);
  }

  async putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    // Write the whole body to a temporary file, then hard-link it into place: link() fails if
    // the key exists, and readers never see a half-written object.
    const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(tmp, body, { flush: true });
    try {
      await link(tmp, target);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const visit = (full: string, name: string): void => {
      if (name.includes('.tmp-')) return;
      const key = relative(this.root, full).split(sep).join('/');
      if (key.startsWith(prefix)) out.push(key);
    };
    // Only the folder the prefix names (its part up to the last '/') is walked: a lookup under
    // value-functions/ never reads the jobs/ tree (bench/RESULTS.md, "Listing a large file store").
    const cut = prefix.lastIndexOf('/');
    const base = cut < 0 ? '' : prefix.slice(0, cut);
    if (base !== '' && base.split('/').some((p) => p === '..' || p === '.' || p === '')) return [];
    await walkFiles(base === '' ? this.root : join(this.root, ...base.split('/')), visit);
    return out.sort();
  }

  /**
   * Removes the temporary files (`<key>.tmp-<pid>-<random>`) that a writer killed between its
   * write and its rename left behind; readers never see them, so nothing else changes. Run when
   * a server opens the store (no writer of its own is active yet); answers how many it removed.
   */
  async removeTemporaryFiles(): Promise<number> {
    const temporary: string[] = [];
    await walkFiles(this.root, (full, name) => {
      if (/\.tmp-\d+-[a-z0-9]+$/.test(name)) temporary.push(full);
    });
    for (const full of temporary) await rm(full, { force: true });
    const removed = temporary.length;
    return removed;
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}

/** Calls `visit` for every file below `dir`, depth first; a folder that does not exist has none. */
async function walkFiles(dir: string, visit: (full: string, name: string) => void): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) await walkFiles(full, visit);
    else visit(full, entry.name);
  }
}
