import { describe, expect, it, vi } from 'vitest';
import { float32Text } from '../../shared/use-cases/serving/answers.js';
import { Rng } from '../../shared/util/random.js';

// Heavy in-process work (exhaustive float32 round trips): longer than the unit tier's 20-s default under load.
vi.setConfig({ testTimeout: 60_000 });

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const write = float32Text;

/** The float32 with these bits. */
function fromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0] as number;
}

describe('float32Text', () => {
  it('reads back as the same float32, for random bit patterns across every exponent', () => {
    const rng = new Rng(7);
    let checked = 0;
    for (let i = 0; i < 200_000; i++) {
      const v = fromBits(Math.floor(rng.next() * 2 ** 32));
      if (!Number.isFinite(v)) continue;
      const text = write(v);
      // Valid JSON, at most 9 significant digits, and exactly v again as a float32.
      const parsed = JSON.parse(text) as number;
      if (Math.fround(parsed) !== v) throw new Error(`${v} written as ${text} reads back as ${Math.fround(parsed)}`);
      const significant = text.replace(/e.*$/, '').replace(/[-.]/g, '').replace(/^0+/, '').replace(/0+$/, '');
      expect(significant.length).toBeLessThanOrEqual(9);
      checked++;
    }
    expect(checked).toBeGreaterThan(190_000);
  });

  it('round-trips the float32 neighbours of powers of ten, where log10 and the carry are one off', () => {
    for (let k = -45; k <= 38; k++) {
      const center = Math.fround(10 ** k);
      if (center === 0 || !Number.isFinite(center)) continue;
      f32[0] = center;
      const bits = u32[0] as number;
      for (let delta = -3; delta <= 3; delta++) {
        if (bits + delta < 1) continue;
        const v = fromBits(bits + delta);
        expect(Math.fround(JSON.parse(write(v)) as number)).toBe(v);
      }
    }
  });

  it('writes what JS writes when the shortest form has at most 9 digits, in the same layout', () => {
    const cases = [
      0.5, -0.25, 1, 2, 10, 100, 123456, 1.5, 0.125, 3e-8, 1e-7, 0.000001, 0.0000015, 1e20, 2e21, 1.5e-40, 1e-45, 65504,
      -1024.5, 0.0625, 3.4028234663852886e38,
    ].map(Math.fround);
    for (const v of cases) {
      if (`${v}`.replace(/e.*$/, '').replace(/[-.]/g, '').replace(/^0+/, '').length <= 9) expect(write(v)).toBe(`${v}`);
    }
    expect(write(Math.fround(1e-7))).toBe('1.00000001e-7');
    expect(write(0.5)).toBe('0.5');
    expect(write(2 ** 70)).toBe('1.18059162e+21');
    expect(write(Math.fround(0.1))).toBe('0.100000001');
    expect(write(-0.0012345678)).toBe('-0.0012345678');
  });

  it('writes 0 for both zeros and refuses non-finite values', () => {
    expect(write(0)).toBe('0');
    expect(write(-0)).toBe('0');
    expect(() => write(Number.NaN)).toThrow(RangeError);
    expect(() => write(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});
