import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';

/**
 * Issue 23, item 6: on the file store, a value-function lookup walked the whole tree (every job
 * file too). The folders it reads are counted here; the cost at 50,000 job files is in bench/.
 */
const read: string[] = [];
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    readdir: (path: string, ...rest: unknown[]) => {
      read.push(String(path));
      return (fs.readdir as (...a: unknown[]) => unknown)(path, ...rest);
    },
  };
});

let dir: string;
let store: FsObjectStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-fs-listing-'));
  store = new FsObjectStore(dir);
  for (let j = 0; j < 20; j++) {
    for (let b = 0; b < 5; b++) await store.put(`jobs/job-${j}/observations/0000000${b}.jsonl`, '{}\n');
  }
  await store.put('value-functions/a/v000001.json', '{}');
  await store.put('value-functions/b/v000001.json', '{}');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('FsObjectStore.list', () => {
  it('reads only the folder a prefix names, never the jobs tree for value-functions/', async () => {
    read.length = 0;
    expect([...(await listCheckpointVersions(store)).keys()]).toEqual(['a', 'b']);
    expect(read.filter((p) => p.includes(`${join(dir, 'jobs')}`))).toEqual([]);
    expect(read.length).toBe(3);
  });

  it('lists a partial name in the prefix folder, and the whole store for an empty prefix', async () => {
    expect(await store.list('jobs/job-1/observations/0000000')).toHaveLength(5);
    expect(await store.list('jobs/job-1')).toHaveLength(5 * 11);
    expect(await store.list('')).toHaveLength(102);
    expect(await store.list('nothing/here/')).toEqual([]);
  });
});
