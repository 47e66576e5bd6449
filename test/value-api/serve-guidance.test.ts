import { describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import {
  GuidanceService,
  type InvalidCheckpoint,
  ValueFunctionCatalog,
} from '../../shared/use-cases/serving/serve-guidance.js';
import { checkpointKey } from '../../shared/storage/layout.js';
import { saveCheckpoint } from '../../shared/storage/value-function-store.js';
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

describe('ValueFunctionCatalog with a bad newest version', () => {
  const truncated = (text: string) => text.slice(0, Math.floor(text.length / 2));

  it.each([
    ['truncated', truncated],
    ['schema-invalid', (text: string) => JSON.stringify({ ...JSON.parse(text), members: [] })],
  ])('serves the last good version when the newest is %s, reads and reports the bad one once', async (_, spoil) => {
    const fixture = await tempStore([
      { id: 'vf', d: 8, seed: 1 },
      { id: 'vf', d: 8, seed: 2 },
    ]);
    const key = checkpointKey('vf', 2);
    await fixture.store.put(key, spoil(new TextDecoder().decode(await fixture.store.get(key))));
    const c = counting(fixture.store);
    const reported: InvalidCheckpoint[] = [];
    const catalog = new ValueFunctionCatalog(c.store, {
      refreshIntervalMs: 1000,
      now: () => 0,
      onInvalidCheckpoint: (i) => reported.push(i),
    });
    for (let i = 0; i < 20; i++) {
      const r = await catalog.resolve('vf');
      expect(r.ok && r.value.version).toBe(1);
    }
    expect(catalog.cached('vf')?.version).toBe(1);
    expect(c.gets()).toBe(2);
    expect(reported).toEqual([
      {
        id: 'vf',
        version: 2,
        code: 'CHECKPOINT_INVALID',
        message: expect.stringMatching(/^checkpoint value-functions\/vf\/v000002\.json is (not JSON|invalid)/),
        since: '1970-01-01T00:00:00.000Z',
      },
    ]);
    expect(catalog.invalidCheckpoints()).toEqual(reported);
    const pinned = await catalog.resolve('vf', 2);
    expect(!pinned.ok && pinned.error.code).toBe('CHECKPOINT_INVALID');
    expect(c.gets()).toBe(2);
    await fixture.cleanup();
  });

  it('reads a bad version again after invalidRetryMs and serves it once it is repaired', async () => {
    const fixture = await tempStore([
      { id: 'vf', d: 8, seed: 1 },
      { id: 'vf', d: 8, seed: 2 },
    ]);
    const key = checkpointKey('vf', 2);
    const good = await fixture.store.get(key);
    await fixture.store.put(key, '{"format":');
    let now = 0;
    const reported: InvalidCheckpoint[] = [];
    const catalog = new ValueFunctionCatalog(fixture.store, {
      refreshIntervalMs: 1e9,
      invalidRetryMs: 5000,
      now: () => now,
      onInvalidCheckpoint: (i) => reported.push(i),
    });
    expect(((await catalog.resolve('vf')) as { value: { version: number } }).value.version).toBe(1);
    now = 6000; // still bad: read again, not reported again
    expect(((await catalog.resolve('vf')) as { value: { version: number } }).value.version).toBe(1);
    expect(reported.length).toBe(1);
    await fixture.store.put(key, good as Uint8Array);
    now = 12_000;
    expect(((await catalog.resolve('vf')) as { value: { version: number } }).value.version).toBe(2);
    expect(catalog.invalidCheckpoints()).toEqual([]);
    await fixture.cleanup();
  });

  it('falls back to the previous version when the listed newest one was deleted, instead of 404', async () => {
    const fixture = await tempStore([
      { id: 'vf', d: 8, seed: 1 },
      { id: 'vf', d: 8, seed: 2 },
    ]);
    const catalog = new ValueFunctionCatalog(fixture.store, { refreshIntervalMs: 1e9, now: () => 0 });
    await catalog.refresh();
    await fixture.store.delete(checkpointKey('vf', 2));
    const r = await catalog.resolve('vf');
    expect(r.ok && r.value.version).toBe(1);
    const pinned = await catalog.resolve('vf', 2);
    expect(!pinned.ok && [pinned.error.code, pinned.error.message]).toEqual([
      'VERSION_NOT_FOUND',
      "value function 'vf' version 2 is listed but missing from the store",
    ]);
    // The next listing no longer has it: nothing is left to report.
    await catalog.refresh();
    expect(catalog.invalidCheckpoints()).toEqual([]);
    await fixture.cleanup();
  });

  it('answers CHECKPOINT_INVALID when no version loads', async () => {
    const fixture = await tempStore([{ id: 'vf', d: 8 }]);
    await fixture.store.put(checkpointKey('vf', 1), '[]');
    const catalog = new ValueFunctionCatalog(fixture.store);
    const r = await catalog.resolve('vf');
    expect(!r.ok && r.error.code).toBe('CHECKPOINT_INVALID');
    expect(!r.ok && r.error.message).toMatch(/^value function 'vf' has no valid version \(versions: 1; v1: checkpoint/);
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
