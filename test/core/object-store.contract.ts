import { beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';

/** One contract for the ObjectStore port, run against every adapter (filesystem, moto, LocalStack). */
export function describeObjectStoreContract(name: string, make: () => Promise<ObjectStore>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let store: ObjectStore;
    beforeAll(async () => {
      store = await make();
    });
    const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

    it('round-trips bytes and strings and answers undefined for a missing key', async () => {
      await store.put('a/one.json', '{"x":1}');
      await store.put('a/two.bin', Uint8Array.from([1, 2, 3]));
      expect(text(await store.get('a/one.json'))).toBe('{"x":1}');
      expect(Array.from((await store.get('a/two.bin')) ?? [])).toEqual([1, 2, 3]);
      expect(await store.get('a/missing')).toBeUndefined();
    });

    it('creates with putIfAbsent once and never overwrites', async () => {
      expect(await store.putIfAbsent('b/result.json', 'first')).toBe(true);
      expect(await store.putIfAbsent('b/result.json', 'second')).toBe(false);
      expect(text(await store.get('b/result.json'))).toBe('first');
    });

    it('lets exactly one of many racing putIfAbsent calls win', async () => {
      const wins = await Promise.all(Array.from({ length: 8 }, (_, i) => store.putIfAbsent('c/race.json', `w${i}`)));
      expect(wins.filter(Boolean)).toHaveLength(1);
      const winner = wins.indexOf(true);
      expect(text(await store.get('c/race.json'))).toBe(`w${winner}`);
    });

    it('lists keys under a prefix, sorted, and deletes', async () => {
      await store.put('d/2', 'x');
      await store.put('d/1', 'x');
      await store.put('dz/3', 'x');
      expect(await store.list('d/')).toEqual(['d/1', 'd/2']);
      await store.delete('d/1');
      expect(await store.list('d/')).toEqual(['d/2']);
      expect(await store.get('d/1')).toBeUndefined();
    });
  });
}
