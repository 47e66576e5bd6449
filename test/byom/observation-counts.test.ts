import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { fitJobSummary, uploadObservations } from '../../shared/use-cases/byom/fit-job-api.js';
import type { StoredObservation } from '../../shared/use-cases/byom/observation-batches.js';
import { createMinimalFitJob } from '../helpers/fit-job.js';

/**
 * Issue 23: GET /v1/fit-jobs/{id} is polled while a fit runs; it used to copy and walk every
 * stored observation per call. The counts are now cached with the batch keys they came from,
 * and must never be stale: other processes (here: other store instances on the same folder,
 * each with a cache of its own) upload to the same job.
 */
class CountingStore implements ObjectStore {
  readonly gets: string[] = [];
  constructor(private readonly inner: ObjectStore) {}
  get location() {
    return this.inner.location;
  }
  put(key: string, body: Uint8Array | string) {
    return this.inner.put(key, body);
  }
  putIfAbsent(key: string, body: Uint8Array | string) {
    return this.inner.putIfAbsent(key, body);
  }
  get(key: string) {
    this.gets.push(key);
    return this.inner.get(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
}

const obs = (trajectory: string, step: number, value: number, predictions?: string): StoredObservation => ({
  trajectory,
  step,
  phi: Float32Array.from({ length: 4 }, (_, j) => value + j),
  ...(predictions === undefined ? { metric: value } : { predictions: { evaluator: 'acc', key: predictions } }),
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-obs-counts-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let n = 0;
async function newJob(store: ObjectStore): Promise<string> {
  const id = `counts-${++n}`;
  await createMinimalFitJob(store, id, 'bowl');
  return id;
}

const uploads = async (store: ObjectStore, id: string) => {
  const s = await fitJobSummary(store, id);
  if (!s.ok) throw s.error;
  return s.value.uploads;
};
const batchReads = (store: CountingStore) => store.gets.filter((k) => k.includes('/observations/')).length;

describe('fitJobSummary upload counts', () => {
  it('reads no stored batch again while nothing is uploaded (the poll during a fit)', async () => {
    const store = new CountingStore(new FsObjectStore(dir));
    const id = await newJob(store);
    await uploadObservations(store, id, [obs('a', 0, 1), obs('a', 1, 2), obs('b', 0, 3, 'p1')], 'up');
    expect(await uploads(store, id)).toMatchObject({ observations: 3, trajectories: 2, d: 4, predictionLines: 1 });
    const before = batchReads(store);
    for (let i = 0; i < 5; i++) expect((await uploads(store, id)).observations).toBe(3);
    expect(batchReads(store)).toBe(before);
  });

  it('shows another process’s upload on the next call, reading only the new batch', async () => {
    const a = new CountingStore(new FsObjectStore(dir));
    const b = new FsObjectStore(dir);
    const id = await newJob(b);
    await uploadObservations(b, id, [obs('a', 0, 1), obs('a', 1, 2)], 'b1');
    expect((await uploads(a, id)).observations).toBe(2);
    const before = batchReads(a);
    // B's upload returns before A's next GET begins: A must count it.
    await uploadObservations(b, id, [obs('b', 0, 1, 'p'), obs('b', 1, 2)], 'b2');
    expect(await uploads(a, id)).toMatchObject({ observations: 4, trajectories: 2, predictionLines: 1 });
    expect(batchReads(a) - before).toBe(1);
    // A retried batch (duplicates only) writes nothing and changes nothing.
    await uploadObservations(b, id, [obs('a', 0, 1)], 'retry');
    expect((await uploads(a, id)).observations).toBe(4);
  });

  it('counts every upload that returned, with uploads and polls from several processes interleaved', async () => {
    const stores = [0, 1, 2].map(() => new FsObjectStore(dir));
    const id = await newJob(stores[0] as ObjectStore);
    let returned = 0;
    await Promise.all(
      Array.from({ length: 24 }, async (_, u) => {
        const store = stores[u % 3] as ObjectStore;
        const r = await uploadObservations(store, id, [obs(`t${u}`, 0, u), obs(`t${u}`, 1, u + 0.5)], `w${u}`);
        expect(r.ok).toBe(true);
        returned++;
        const seen = returned;
        // Every process's poll after this upload returned shows at least the uploads returned so far.
        for (const s of stores) expect((await uploads(s, id)).observations).toBeGreaterThanOrEqual(2 * seen);
      }),
    );
    for (const s of stores) expect(await uploads(s, id)).toMatchObject({ observations: 48, trajectories: 24 });
  });
});
