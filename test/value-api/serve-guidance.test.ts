import { describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { GuidanceService, ValueFunctionCatalog } from '../../shared/use-cases/serve-guidance.js';
import { saveCheckpoint } from '../../shared/use-cases/value-function-store.js';
import { makeCheckpoint } from '../helpers/make-checkpoint.js';
import { tempStore } from './fixtures.js';

/** Counts store listings and reads. */
function counting(store: ObjectStore): { store: ObjectStore; lists: () => number; gets: () => number } {
  let lists = 0;
  let gets = 0;
  return {
    store: {
      location: store.location,
      put: (k, b) => store.put(k, b),
      putIfAbsent: (k, b) => store.putIfAbsent(k, b),
      get: (k) => {
        gets++;
        return store.get(k);
      },
      list: (p) => {
        lists++;
        return store.list(p);
      },
      delete: (k) => store.delete(k),
    },
    lists: () => lists,
    gets: () => gets,
  };
}

describe('ValueFunctionCatalog', () => {
  it('lists the store at most once per interval and compiles each version once', async () => {
    const fixture = await tempStore([{ id: 'vf', d: 8 }]);
    const c = counting(fixture.store);
    let now = 0;
    const catalog = new ValueFunctionCatalog(c.store, { refreshIntervalMs: 1000, now: () => now });
    for (let i = 0; i < 100; i++) expect((await catalog.resolve('vf')).ok).toBe(true);
    expect(c.lists()).toBe(1);
    expect(c.gets()).toBe(1);
    now = 1500;
    await catalog.resolve('vf'); // stale: serves the cached listing, refreshes in the background
    await catalog.refresh();
    expect(c.lists()).toBe(2);
    expect(c.gets()).toBe(1);
    await fixture.cleanup();
  });

  it('picks up a new version after the interval without a restart', async () => {
    const fixture = await tempStore([{ id: 'vf', d: 8 }]);
    let now = 0;
    const catalog = new ValueFunctionCatalog(fixture.store, { refreshIntervalMs: 1000, now: () => now });
    const first = await catalog.resolve('vf');
    const { version: _, ...next } = makeCheckpoint({ id: 'vf', d: 8, seed: 9 });
    await saveCheckpoint(fixture.store, next);
    expect(first.ok && first.value.version).toBe(1);
    now = 500;
    const cached = await catalog.resolve('vf');
    expect(cached.ok && cached.value.version).toBe(1);
    now = 1001;
    await catalog.resolve('vf');
    await catalog.refresh();
    const latest = await catalog.resolve('vf');
    expect(latest.ok && latest.value.version).toBe(2);
    await fixture.cleanup();
  });

  it('answers unknown ids with one fresh listing per interval, then VALUE_FUNCTION_NOT_FOUND', async () => {
    const fixture = await tempStore([{ id: 'vf', d: 8 }]);
    const c = counting(fixture.store);
    let now = 0;
    const catalog = new ValueFunctionCatalog(c.store, { refreshIntervalMs: 1000, now: () => now });
    for (let i = 0; i < 50; i++) {
      const r = await catalog.resolve(`nope-${i}`);
      expect(!r.ok && r.error.code).toBe('VALUE_FUNCTION_NOT_FOUND');
    }
    expect(c.lists()).toBe(1);
    now = 2000;
    const { version: _, ...added } = makeCheckpoint({ id: 'added', d: 8 });
    await saveCheckpoint(fixture.store, added);
    expect((await catalog.resolve('added')).ok).toBe(true);
    await fixture.cleanup();
  });
});

describe('ValueFunctionCatalog cache', () => {
  it('keeps at most maxCompiled checkpoints, dropping the least recently used', async () => {
    const fixture = await tempStore([
      { id: 'a', d: 4 },
      { id: 'b', d: 4 },
      { id: 'c', d: 4 },
    ]);
    const c = counting(fixture.store);
    const catalog = new ValueFunctionCatalog(c.store, { maxCompiled: 2 });
    await catalog.resolve('a');
    await catalog.resolve('b');
    await catalog.resolve('a'); // a is now more recent than b
    await catalog.resolve('c'); // evicts b
    expect(c.gets()).toBe(3);
    await catalog.resolve('a');
    await catalog.resolve('c');
    expect(c.gets()).toBe(3);
    await catalog.resolve('b');
    expect(c.gets()).toBe(4);
    await fixture.cleanup();
  });
});

describe('GuidanceService', () => {
  it('evaluates a batch of binary rows like the same rows one by one', async () => {
    const fixture = await tempStore([{ id: 'vf', d: 4, members: 2 }]);
    const service = new GuidanceService(new ValueFunctionCatalog(fixture.store), { maxRows: 10 });
    const rows = [
      [0.1, -0.2, 0.3, 0.4],
      [1, 2, -3, 0.5],
    ];
    const batch = await service.gradient('vf', undefined, { kind: 'float32', data: Float32Array.from(rows.flat()) });
    expect(batch.ok).toBe(true);
    if (!batch.ok) return;
    for (const [r, phi] of rows.entries()) {
      const one = await service.gradient('vf', undefined, { kind: 'json', phi });
      expect(one.ok && Array.from(one.value.gradients)).toEqual(
        Array.from(batch.value.gradients.subarray(r * 4, r * 4 + 4)),
      );
      expect(one.ok && one.value.single).toBe(true);
    }
    expect(batch.value.n).toBe(2);
    await fixture.cleanup();
  });
});
