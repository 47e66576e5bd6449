#!/usr/bin/env node
// Listing a large file store (issue 23, item 6): a folder store with --jobs-files files under
// jobs/ (5 observation batches per job) and 10 value functions; times listCheckpointVersions
// (the lookup the value API repeats every refresh interval), --repeat times, median and max.
// `before`: the same lookup as it was (a walk of the whole store, filtered by prefix, which is
// what list('') does); `after`: FsObjectStore.list walking only value-functions/.
// Usage: npm run build && nice -n 10 node bench/fs-listing.mjs [--job-files 50000] [--repeat 5]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { 'job-files': { type: 'string', default: '50000' }, repeat: { type: 'string', default: '5' } },
});
const { FsObjectStore } = await import('../dist/shared/adapters/object-store.fs.js');
const { listCheckpointVersions } = await import('../dist/shared/storage/value-function-store.js');

const dir = await mkdtemp(join(tmpdir(), 'mo-bench-listing-'));
const files = Number(values['job-files']);
for (let j = 0; j < files / 5; j++) {
  const d = join(dir, 'jobs', `job-${j}`, 'observations');
  await mkdir(d, { recursive: true });
  await Promise.all([0, 1, 2, 3, 4].map((b) => writeFile(join(d, `0000000${b}.jsonl`), '{}\n')));
}
for (let v = 0; v < 10; v++) {
  await mkdir(join(dir, 'value-functions', `vf-${v}`), { recursive: true });
  await writeFile(join(dir, 'value-functions', `vf-${v}`, 'v000001.json'), '{}');
}
const store = new FsObjectStore(dir);
const before = {
  location: store.location,
  list: async (prefix) => (await store.list('')).filter((k) => k.startsWith(prefix)),
};
const time = async (s) => {
  const ms = [];
  for (let i = 0; i < Number(values.repeat); i++) {
    const t = performance.now();
    const ids = await listCheckpointVersions(s);
    ms.push(performance.now() - t);
    if (ids.size !== 10) throw new Error(`expected 10 ids, got ${ids.size}`);
  }
  ms.sort((a, b) => a - b);
  return { medianMs: Math.round(ms[Math.floor(ms.length / 2)] * 10) / 10, maxMs: Math.round(ms.at(-1) * 10) / 10 };
};
console.log(JSON.stringify({ jobFiles: files, before: await time(before), after: await time(store) }));
await rm(dir, { recursive: true, force: true });
