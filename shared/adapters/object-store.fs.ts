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
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (!entry.name.includes('.tmp-')) {
          const key = relative(this.root, full).split(sep).join('/');
          if (key.startsWith(prefix)) out.push(key);
        }
      }
    };
    // Only the folder the prefix names (its part up to the last '/') is walked: a lookup under
    // value-functions/ never reads the jobs/ tree (bench/RESULTS.md, "Listing a large file store").
    const cut = prefix.lastIndexOf('/');
    const base = cut < 0 ? '' : prefix.slice(0, cut);
    if (base !== '' && base.split('/').some((p) => p === '..' || p === '.' || p === '')) return [];
    await walk(base === '' ? this.root : join(this.root, ...base.split('/')));
    return out.sort();
  }

  /**
   * Removes the temporary files (`<key>.tmp-<pid>-<random>`) that a writer killed between its
   * write and its rename left behind; readers never see them, so nothing else changes. Run when
   * a server opens the store (no writer of its own is active yet); answers how many it removed.
   */
  async removeTemporaryFiles(): Promise<number> {
    let removed = 0;
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (/\.tmp-\d+-[a-z0-9]+$/.test(entry.name)) {
          await rm(full, { force: true });
          removed++;
        }
      }
    };
    await walk(this.root);
    return removed;
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}
