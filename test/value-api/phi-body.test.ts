import { describe, expect, it } from 'vitest';
import { checkPhiBody as phiResult } from '../../shared/use-cases/serving/request-bodies.js';
import { predictRequestSchema } from '../../shared/schemas/api.js';
import { Rng } from '../../shared/util/random.js';
import { unwrap } from '../../shared/util/result.js';

const D = 16;

/** Values of every kind JSON bodies carry: finite, non-finite, wrong types, nested, empty. */
function junk(rng: Rng): unknown {
  return [null, true, 'NaN', '1e5', {}, [], [[]], { phi: 1 }, '', 0, -0, 1e308, [1, [2]], [[1], 2]][rng.int(14)];
}

/** Bodies in the style of fuzz.test.ts: mostly valid, each of the rest wrong in one way. */
function bodies(rng: Rng, count: number, d: number): unknown[] {
  const row = (n = d) => Array.from(rng.normals(n));
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    switch (i % 12) {
      case 0:
        out.push({ phi: row() });
        break;
      case 1:
        out.push({ phi: Array.from({ length: 1 + rng.int(4) }, () => row()) });
        break;
      case 2:
        out.push({ phi: row(rng.int(2 * d)) });
        break;
      case 3: {
        const phi: unknown[] = row();
        phi[rng.int(d)] = junk(rng);
        out.push({ phi });
        break;
      }
      case 4: {
        const rows: unknown[] = [row(), row()];
        rows[rng.int(2)] = junk(rng);
        out.push({ phi: rows });
        break;
      }
      case 5:
        out.push(junk(rng));
        break;
      case 6:
        out.push({ phi: junk(rng) });
        break;
      case 7:
        out.push({ phi: row(), extra: junk(rng) });
        break;
      case 8:
        out.push({ nope: row() });
        break;
      case 9:
        out.push([row()]);
        break;
      case 10:
        out.push({ phi: [] });
        break;
      default:
        out.push({ phi: [row(), row(d + 1)] });
    }
  }
  return out;
}

describe('checkPhiBody (the bounded check of predict and gradient bodies)', () => {
  it('refuses exactly what the zod schema refuses, and returns the same phi otherwise, on 6,000 bodies', () => {
    const rng = new Rng(12);
    let refused = 0;
    for (const body of bodies(rng, 6000, D)) {
      const parsed: unknown = JSON.parse(JSON.stringify(body) ?? 'null');
      const zod = predictRequestSchema.safeParse(parsed);
      let phi: unknown;
      let error: { code?: string } | undefined;
      try {
        phi = unwrap(phiResult('predict', parsed));
      } catch (e) {
        error = e as { code?: string };
      }
      const empty =
        Array.isArray((parsed as { phi?: unknown } | null)?.phi) && (parsed as { phi: [] }).phi.length === 0;
      if (empty) {
        // The schema says minItems 1; the hand check lets the use-case answer EMPTY_BATCH.
        expect([zod.success, phi]).toEqual([false, []]);
        continue;
      }
      expect(error === undefined).toBe(zod.success);
      if (zod.success) expect(phi).toEqual(zod.data.phi);
      else {
        refused++;
        expect(error?.code).toBe('INVALID_BODY');
      }
    }
    expect(refused).toBeGreaterThan(1000);
  });
});
