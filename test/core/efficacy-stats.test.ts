import { describe, expect, it } from 'vitest';
import { meanCi95, pairedComparison, tQuantile975 } from '../../shared/method/stats.js';

describe('tQuantile975', () => {
  it('gives the tabled quantiles and approaches the normal one', () => {
    expect(tQuantile975(1)).toBeCloseTo(12.706, 3);
    expect(tQuantile975(4)).toBeCloseTo(2.776, 3);
    expect(tQuantile975(30)).toBeCloseTo(2.042, 3);
    // Reference values: t(0.975; 40) = 2.0211, t(0.975; 120) = 1.9799.
    expect(tQuantile975(40)).toBeCloseTo(2.0211, 3);
    expect(tQuantile975(120)).toBeCloseTo(1.9799, 3);
    expect(() => tQuantile975(0)).toThrow(RangeError);
  });
});

describe('meanCi95', () => {
  it('computes the Student-t interval by hand', () => {
    // mean 3, sample std sqrt(2.5), half width 2.776 * 1.5811 / sqrt(5) = 1.9630
    const { mean, ci95 } = meanCi95([1, 2, 3, 4, 5]);
    expect(mean).toBe(3);
    expect(ci95?.[0]).toBeCloseTo(3 - 1.963, 3);
    expect(ci95?.[1]).toBeCloseTo(3 + 1.963, 3);
  });
  it('gives no interval for a single value', () => {
    expect(meanCi95([0.15])).toEqual({ mean: 0.15, ci95: null });
  });
});

describe('pairedComparison', () => {
  const a = [0.1, 0.12, 0.11];
  const b = [0.12, 0.13, 0.13];
  it('pairs by replicate and calls a lower MCR better', () => {
    // diffs -0.02, -0.01, -0.02: mean -0.016667, std 0.0057735, half 4.303 * 0.0057735 / sqrt(3) = 0.014343
    const c = pairedComparison(a, b, 'minimize');
    expect(c.diff).toBeCloseTo(-0.016667, 5);
    expect(c.ci95?.[0]).toBeCloseTo(-0.03101, 4);
    expect(c.ci95?.[1]).toBeCloseTo(-0.002324, 4);
    expect(c.verdict).toBe('better');
    expect(c.perReplicate.map((x) => Number(x.toFixed(6)))).toEqual([-0.02, -0.01, -0.02]);
  });
  it('reads the same differences as worse for a metric that is maximised', () => {
    expect(pairedComparison(a, b, 'maximize').verdict).toBe('worse');
  });
  it('calls an interval that covers 0 a tie', () => {
    expect(pairedComparison([0.1, 0.2, 0.15], [0.15, 0.15, 0.15], 'minimize').verdict).toBe('tie');
    expect(pairedComparison([0.1, 0.1], [0.1, 0.1], 'minimize')).toMatchObject({
      diff: 0,
      ci95: [0, 0],
      verdict: 'tie',
    });
  });
  it('says that one replicate gives no interval', () => {
    expect(pairedComparison([0.1], [0.2], 'minimize')).toMatchObject({ ci95: null, verdict: 'no-interval' });
  });
  it('refuses unpaired inputs', () => {
    expect(() => pairedComparison([1, 2], [1], 'minimize')).toThrow(RangeError);
  });
});
