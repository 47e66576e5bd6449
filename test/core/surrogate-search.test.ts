import { describe, expect, it } from 'vitest';
import { fitResidualGp, surrogateSearch } from '../../shared/method/surrogate-search.js';
import { batched } from '../helpers/batched-objective.js';

const target = [1, -2, 0.5, 3, -1, 0.25];
const sphere = (x: Float32Array) => x.reduce((s, v, i) => s + (v - (target[i] as number)) ** 2, 0);

describe('surrogateSearch (value-function-guided search with real queries)', () => {
  it('spends exactly its budget and returns the best real observation', async () => {
    const obj = batched(sphere);
    const seen: number[] = [];
    const found = await surrogateSearch(
      async (xs) => {
        const v = await obj.f(xs);
        seen.push(...(v as number[]));
        return v;
      },
      () => 0,
      [new Float32Array(6)],
      { budget: 120, sigma0: 0.5, seed: 3 },
    );
    expect(obj.calls()).toBe(120);
    expect(found?.spent).toBe(120);
    expect(found?.value).toBe(Math.min(...seen));
    expect(sphere(found?.best as Float32Array)).toBeCloseTo(found?.value as number, 5);
    // Every observation comes back, the initial point first and marked as such.
    expect(found?.observed.map((o) => o.value)).toEqual(seen);
    expect(found?.observed[0]?.fromInitial).toBe(0);
    expect(found?.observed.slice(1).every((o) => o.fromInitial === -1)).toBe(true);
  });

  it('goes further with a prior that knows the landscape than with a flat one', async () => {
    const start = [new Float32Array(6)];
    // The prior is the true function plus an offset and a tilt: right in shape, wrong in level.
    const prior = (x: Float32Array) => sphere(x) + 3 + 0.1 * (x[0] as number);
    for (const seed of [1, 2, 11]) {
      const opts = { budget: 30, sigma0: 0.5, seed };
      const flat = await surrogateSearch(batched(sphere).f, () => 0, start, opts);
      const informed = await surrogateSearch(batched(sphere).f, prior, start, opts);
      // From 15.31 at the start; with a flat prior only the GP on 30 observations guides it.
      expect(informed?.value as number).toBeLessThan(1);
      expect(informed?.value as number).toBeLessThan((flat?.value as number) / 2);
    }
  });

  it('corrects a prior that points the wrong way with the real observations', async () => {
    // The prior's minimum is at -target: descending it alone would go the wrong way.
    const wrong = (x: Float32Array) => x.reduce((s, v, i) => s + (v + (target[i] as number)) ** 2, 0);
    const found = await surrogateSearch(batched(sphere).f, wrong, [new Float32Array(6)], {
      budget: 300,
      sigma0: 0.5,
      seed: 5,
    });
    expect(found?.value as number).toBeLessThan(sphere(new Float32Array(6)) / 3);
  });

  it('names the initial point it kept when nothing beat it, and ignores failed queries', async () => {
    const atTarget = Float32Array.from(target);
    const found = await surrogateSearch(
      batched((x) => ((x[0] as number) > 1.2 ? null : sphere(x))).f,
      () => 0,
      [new Float32Array(6), atTarget],
      { budget: 40, sigma0: 0.5, seed: 2 },
    );
    expect(found?.fromInitial).toBe(1);
    expect(found?.value).toBe(0);
    expect(
      await surrogateSearch(batched(() => null).f, () => 0, [new Float32Array(2)], { budget: 10, sigma0: 1, seed: 1 }),
    ).toBeNull();
  });
});

describe('fitResidualGp', () => {
  it('reproduces smooth residuals at and between the observed points', () => {
    const xs: Float32Array[] = [];
    const ys: number[] = [];
    const priors: number[] = [];
    for (let i = 0; i <= 20; i++) {
      const x = Float32Array.from([i / 10, 0]);
      xs.push(x);
      priors.push(1);
      ys.push(1 + Math.sin(i / 10));
    }
    const gp = fitResidualGp(xs, ys, priors, Float32Array.from([1, 0]), 256);
    for (const t of [0.3, 1.05, 1.77]) {
      const { mean, sd } = gp.predict(Float32Array.from([t, 0]));
      expect(Math.abs(mean - Math.sin(t))).toBeLessThan(0.02);
      expect(sd).toBeLessThan(0.1);
    }
    // Far from every observation the residual falls back to its mean and the doubt grows.
    const far = gp.predict(Float32Array.from([30, 30]));
    expect(far.sd).toBeGreaterThan(gp.predict(Float32Array.from([1, 0])).sd);
  });
});
