import { describe, expect, it } from 'vitest';
import { cmaEsMinimiser } from '../../shared/use-cases/training/black-box-peers.js';
import { unwrap } from '../../shared/util/result.js';
import { batched } from '../helpers/batched-objective.js';

describe('cmaEsMinimiser (the cma_es peer)', () => {
  it('finds the minimum of a shifted sphere within its budget, spending exactly the budget', async () => {
    const target = [1, -2, 0.5, 3, -1];
    const obj = batched((x) => x.reduce((s, v, i) => s + (v - (target[i] as number)) ** 2, 0));
    const found = unwrap(await cmaEsMinimiser(obj.f, new Float32Array(5), 0.5, 600, 7));
    expect(obj.calls()).toBe(600);
    expect(found).not.toBeNull();
    // Started 15.25 away (squared distance); CMA-ES at 600 evaluations in 5-D gets far below 1e-3.
    expect(found?.value as number).toBeLessThan(1e-3);
    found?.best.forEach((v, i) => expect(Math.abs(v - (target[i] as number))).toBeLessThan(0.05));
  });

  it('ranks failed queries last and returns null when every query failed', async () => {
    const half = batched((x) => ((x[0] as number) > 0 ? null : (x[0] as number) ** 2 + (x[1] as number) ** 2));
    const found = unwrap(await cmaEsMinimiser(half.f, Float32Array.from([-1, 1]), 0.3, 200, 3));
    expect(found).not.toBeNull();
    expect(found?.best[0] as number).toBeLessThanOrEqual(0);
    const none = batched(() => null);
    expect(unwrap(await cmaEsMinimiser(none.f, new Float32Array(3), 0.3, 30, 3))).toBeNull();
    expect(none.calls()).toBe(30);
  });
});
