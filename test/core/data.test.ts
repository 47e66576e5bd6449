import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../shared/adapters/dataset.fs.js';
import { positiveRate, toDense } from '../../shared/data/dataset.js';
import { parseLibsvm } from '../../shared/data/libsvm.js';
import { BalancedSampler } from '../../shared/data/sampler.js';
import { splitRows } from '../../shared/data/split.js';
import { Rng } from '../../shared/util/random.js';

describe('parseLibsvm', () => {
  it.each([
    ['{-1,+1}', ['-1', '+1'], [0, 1]],
    ['{0,1}', ['0', '1'], [0, 1]],
    ['{1,2}', ['1', '2'], [0, 1]],
  ])('maps %s labels to 0/1 with the larger positive', (_n, raw, expected) => {
    const text = `${raw[0]} 1:1 3:0.5\n${raw[1]} 2:2\n`;
    const r = parseLibsvm(text);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(Array.from(r.value.labels)).toEqual(expected);
      expect(r.value.features).toBe(3);
      expect(Array.from(toDense(r.value))).toEqual([1, 0, 0.5, 0, 2, 0]);
    }
  });
  it('honours --positive-label and an explicit feature count', () => {
    const r = parseLibsvm('1 1:1\n2 2:1\n', { positiveLabel: 1, features: 5 });
    expect(r.ok && Array.from(r.value.labels)).toEqual([1, 0]);
    expect(r.ok && r.value.features).toBe(5);
  });
  it('reads multi-class labels in ascending order', () => {
    const r = parseLibsvm('3 1:1\n1 1:1\n2 1:1\n');
    expect(r.ok && r.value.classes).toBe(3);
    expect(r.ok && Array.from(r.value.labels)).toEqual([2, 0, 1]);
  });
  it.each([
    ['abc 1:1', 'LIBSVM_MALFORMED', "f: line 2: label 'abc' is not a number"],
    ['1 1:x', 'LIBSVM_MALFORMED', "f: line 2: token '1:x' is not 'index:value' (value 'x' is not a finite number)"],
    [
      '1 1:inf',
      'LIBSVM_MALFORMED',
      "f: line 2: token '1:inf' is not 'index:value' (value 'inf' is not a finite number)",
    ],
    ['1 1.5:2', 'LIBSVM_MALFORMED', "f: line 2: token '1.5:2' is not 'index:value' (index '1.5' is not an integer)"],
    ['1 3:1 2:1', 'LIBSVM_MALFORMED', 'f: line 2: feature indices must increase (2 after 3)'],
    ['1 1', 'LIBSVM_MALFORMED', "f: line 2: token '1' is not 'index:value' (no colon)"],
    [
      '1 0:1',
      'LIBSVM_INDEX_OUT_OF_RANGE',
      'f: line 2: feature index 0 is out of range: indices are 1-based, from 1 to 2147483647',
    ],
    [
      '1 -3:1',
      'LIBSVM_INDEX_OUT_OF_RANGE',
      'f: line 2: feature index -3 is out of range: indices are 1-based, from 1 to 2147483647',
    ],
    [
      '1 2147483648:1',
      'LIBSVM_INDEX_OUT_OF_RANGE',
      'f: line 2: feature index 2147483648 is out of range: indices are 1-based, from 1 to 2147483647',
    ],
    [
      '1 2:1e39',
      'LIBSVM_VALUE_OUT_OF_RANGE',
      'f: line 2: value 1e39 of feature 2 is beyond the float32 range (|x| < 3.4e38)',
    ],
    [
      '1 2:-3.5e38',
      'LIBSVM_VALUE_OUT_OF_RANGE',
      'f: line 2: value -3.5e38 of feature 2 is beyond the float32 range (|x| < 3.4e38)',
    ],
  ])('rejects %j naming the line and problem', (line, code, message) => {
    const r = parseLibsvm(`1 1:1\n${line}\n`, { name: 'f' });
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect([r.error.code, r.error.message, r.error.details]).toEqual([
        code,
        message,
        expect.objectContaining({ line: 2 }),
      ]);
  });
  it('accepts the largest int32 index and the largest float32 value', () => {
    const r = parseLibsvm('1 2147483647:3.4e38\n');
    expect(r.ok && [r.value.features, r.value.indices[0], r.value.values[0]]).toEqual([
      2147483647,
      2147483646,
      Math.fround(3.4e38),
    ]);
  });
  it('rejects an unknown positive label and an empty file', () => {
    expect(parseLibsvm('1 1:1\n-1 1:1\n', { positiveLabel: 7 })).toMatchObject({
      ok: false,
      error: { code: 'LIBSVM_LABELS' },
    });
    expect(parseLibsvm('\n# only a comment\n')).toMatchObject({ ok: false, error: { code: 'LIBSVM_EMPTY' } });
  });
});

describe('loadDataset', () => {
  it('loads the bundled A9A (train + test files)', async () => {
    const r = await loadDataset('a9a');
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.rows).toBe(32561 + 16281);
      expect(r.value.features).toBe(123);
      expect(positiveRate(r.value.labels)).toBeCloseTo((7841 + 3846) / 48842, 6);
    }
  });
  it('reads gzip and plain files alike and reports a missing one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mo-data-'));
    const rows = Array.from({ length: 60 }, (_, i) => `${i % 3 === 0 ? 1 : -1} ${(i % 4) + 1}:1`).join('\n');
    await writeFile(join(dir, 'x.libsvm'), rows);
    await writeFile(join(dir, 'x.libsvm.gz'), gzipSync(rows));
    const plain = await loadDataset(join(dir, 'x.libsvm'));
    const gz = await loadDataset(join(dir, 'x.libsvm.gz'));
    expect(plain.ok && gz.ok && Array.from(plain.value.labels)).toEqual(gz.ok ? Array.from(gz.value.labels) : []);
    const missing = await loadDataset(join(dir, 'nope.libsvm'));
    expect(missing).toMatchObject({ ok: false, error: { code: 'DATASET_NOT_FOUND' } });
  });
});

describe('splitRows and BalancedSampler', () => {
  it('splits 70/10/20 disjointly and reproducibly', () => {
    const a = splitRows(1000, 3);
    const b = splitRows(1000, 3);
    expect([a.train.length, a.val.length, a.test.length]).toEqual([700, 100, 200]);
    expect(Array.from(a.val)).toEqual(Array.from(b.val));
    const all = new Set([...a.train, ...a.val, ...a.test]);
    expect(all.size).toBe(1000);
  });
  it('draws classes equally often', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => (i < 100 ? 1 : 0));
    const s = new BalancedSampler(
      Int32Array.from({ length: 1000 }, (_, i) => i),
      labels,
      2,
    );
    const batch = s.sample(new Rng(1), 512);
    expect(positiveRate(Int32Array.from(batch, (r) => labels[r]!))).toBe(0.5);
  });
});
