import { describe, expect, it } from 'vitest';
import {
  checkGuideBody as guideResult,
  checkPhiBody as phiResult,
  moreContainersThan,
} from '../../shared/use-cases/serving/request-bodies.js';
import { type DomainError, unwrap } from '../../shared/util/result.js';

// The checks return Results; these throw their errors, as the routes do (unwrap).
const checkPhiBody = (op: string, body: unknown) => unwrap(phiResult(op, body));
const checkGuideBody = (body: unknown) => unwrap(guideResult(body));

/** An array that counts how many of its elements were read. */
function counted(items: unknown[]): { array: unknown[]; reads: () => number } {
  let reads = 0;
  const array = new Proxy(items, {
    get(target, key, receiver) {
      if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  return { array, reads: () => reads };
}

function thrown(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (e) {
    return e as DomainError;
  }
  throw new Error('expected a throw');
}

describe('checkPhiBody', () => {
  it('stops at the first wrongly typed element instead of visiting every one', () => {
    const { array, reads } = counted(Array.from({ length: 100_000 }, () => ({})));
    const e = thrown(() => checkPhiBody('predict', { phi: array }));
    expect(e.code).toBe('INVALID_BODY');
    expect(e.details).toEqual({
      issues: [{ path: 'phi.0', message: 'expected a number or an array of numbers, got an object' }],
    });
    expect(reads()).toBeLessThan(10);
  });

  it('reports the index of the first bad element of a batch, after reading only up to it', () => {
    const rows: unknown[] = [[1, 2], [3, 4], [5, 'x'], ...Array.from({ length: 50_000 }, () => [{}])];
    const { array, reads } = counted(rows);
    const e = thrown(() => checkPhiBody('gradient', { phi: array }));
    expect(e.message).toBe("gradient: invalid body at 'phi.2.1': expected a number, got string");
    expect(reads()).toBeLessThan(20);
  });

  it('answers NOT_FINITE for a number that overflowed to Infinity', () => {
    const e = thrown(() => checkPhiBody('predict', JSON.parse('{"phi":[1,2,1e309]}')));
    expect([e.code, e.message]).toEqual([
      'NOT_FINITE',
      'predict: phi[2] is Infinity (a number beyond the float range, such as 1e309)',
    ]);
  });

  it('answers INVALID_BODY through the schema when phi is not an array, without reading other keys', () => {
    const { array, reads } = counted(Array.from({ length: 10_000 }, () => ({})));
    const e = thrown(() => checkPhiBody('predict', { phi: 'x', extra: array }));
    expect(e.code).toBe('INVALID_BODY');
    expect(e.message).toMatch(/^predict: invalid body at 'phi'/);
    expect(reads()).toBe(0);
    expect(thrown(() => checkPhiBody('predict', [{}, {}])).code).toBe('INVALID_BODY');
    expect(thrown(() => checkPhiBody('predict', { phi: [[1], 2] })).message).toBe(
      "predict: invalid body at 'phi.1': expected an array of numbers, got number",
    );
  });

  it('returns a valid phi unchanged', () => {
    expect(checkPhiBody('predict', { phi: [1, 2] })).toEqual([1, 2]);
    expect(checkPhiBody('predict', { phi: [[1], [2]] })).toEqual([[1], [2]]);
    expect(checkPhiBody('predict', { phi: [] })).toEqual([]);
  });
});

describe('checkGuideBody', () => {
  it('stops at the first bad element of phi and of each loss gradient', () => {
    const { array, reads } = counted(Array.from({ length: 100_000 }, () => ({})));
    const e = thrown(() => checkGuideBody({ phi: array, lossGradients: [] }));
    expect([e.code, e.message]).toEqual([
      'INVALID_BODY',
      "guide: invalid body at 'phi.0': expected a number, got an object",
    ]);
    expect(reads()).toBeLessThan(10);
    const g = counted([1, ...Array.from({ length: 100_000 }, () => ({}))]);
    const e2 = thrown(() => checkGuideBody({ phi: [1], lossGradients: [[1], g.array] }));
    expect(e2.message).toBe("guide: invalid body at 'lossGradients.1.1': expected a number, got an object");
    expect(g.reads()).toBeLessThan(10);
  });

  it('rejects more than 16 loss gradients before reading any of them', () => {
    const { array, reads } = counted(Array.from({ length: 40_000 }, () => [{}]));
    const e = thrown(() => checkGuideBody({ phi: [1], lossGradients: array }));
    expect([e.code, e.message]).toEqual([
      'INVALID_BODY',
      "guide: invalid body at 'lossGradients': at most 16 loss gradients are accepted, got 40000",
    ]);
    expect(reads()).toBe(0);
  });

  it('leaves the other fields to the schema', () => {
    expect(thrown(() => checkGuideBody({ phi: [1], lossGradients: [], P: 1.5 })).code).toBe('INVALID_BODY');
    expect(checkGuideBody({ phi: [1], lossGradients: [[2]], seed: 3 })).toEqual({
      phi: [1],
      lossGradients: [[2]],
      seed: 3,
    });
  });
});

describe('moreContainersThan', () => {
  const enc = new TextEncoder();
  it('counts opening brackets outside strings and stops past the limit', () => {
    expect(moreContainersThan(enc.encode('{"phi":[[1],[2]]}'), 4)).toBe(false);
    expect(moreContainersThan(enc.encode('{"phi":[[1],[2]]}'), 3)).toBe(true);
    expect(moreContainersThan(enc.encode('{"a":"[[[{{{\\"[[[","b":[]}'), 2)).toBe(false);
    expect(moreContainersThan(enc.encode('{"a":"\\\\",[[['), 3)).toBe(true);
  });

  it('agrees with a byte-by-byte count on random texts of brackets, quotes and escapes', () => {
    // The reference: the plain loop that moreContainersThan falls back to past its quick bound.
    const reference = (text: string, limit: number) => {
      let n = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (c === '"') {
          for (i++; i < text.length; i++) {
            if (text[i] === '\\') i++;
            else if (text[i] === '"') break;
          }
        } else if (c === '[' || c === '{') n++;
      }
      return n > limit;
    };
    const alphabet = ['[', '{', '"', '\\', ']', '1', ','];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let t = 0; t < 2000; t++) {
      const text = Array.from({ length: Math.floor(random() * 40) }, () => alphabet[Math.floor(random() * 7)]).join('');
      const limit = Math.floor(random() * 12);
      expect(moreContainersThan(enc.encode(text), limit), `${text} (limit ${limit})`).toBe(reference(text, limit));
    }
  });
});
