import { describe, expect, it } from 'vitest';
import { type Curves, niceTicks, plotForestSvg, plotTrajectoriesSvg } from '../../shared/report/plot-svg.js';
import type { DemoReport } from '../../shared/schemas/report.js';

/**
 * Issue 23, item 8: the demo's plots do not mislead. trajectories.svg shows where the strongest
 * baselines ended, not only ce_finetune; comparisons.svg has a legend, round tick values, and
 * says plainly that one replicate gives no interval.
 */
const result = (mean: number, ci: [number, number] | null = null) => ({
  mean,
  ci95: ci,
  std: 0,
  perReplicate: [mean],
  runs: [[mean]],
  missing: 0,
  queries: 0,
  totalQueries: 0,
  valRuns: [[null]],
});
const comparison = (diff: number, verdict: 'better' | 'tie' | 'worse' | 'no-interval') => ({
  diff,
  ci95: verdict === 'no-interval' ? null : ([diff - 0.004, diff + 0.004] as [number, number]),
  verdict,
  perReplicate: [diff],
});

/** The A9A MCR run the issue quotes: ce_finetune the weakest, three baselines ahead of metricopt. */
function report(replicates: number): DemoReport {
  const v = replicates === 1 ? 'no-interval' : 'tie';
  return {
    dataset: 'a9a',
    metric: 'mcr',
    direction: 'minimize',
    reportSplit: 'test',
    seeds: [1, 2, 3, 4, 5],
    results: {
      ce: result(0.199),
      ce_finetune: result(0.2055),
      ce_finetune_natural: result(0.1496),
      threshold: result(0.1501),
      prior_correction: result(0.1493),
      random_search: result(0.158),
      metricopt: result(0.1531),
    },
    comparisons: {
      ce: comparison(-0.0459, v),
      ce_finetune: comparison(-0.0524, v),
      ce_finetune_natural: comparison(0.0035, v),
      threshold: comparison(0.003, v),
      prior_correction: comparison(0.0038, v),
      random_search: comparison(-0.0049, v),
    },
    replicates: Array.from({ length: replicates }, (_, i) => ({
      index: i,
      comparisons: { prior_correction: comparison(0.0038, 'tie') },
    })),
  } as unknown as DemoReport;
}

const curves: Curves[] = [
  {
    ceFinetuneMetric: [0.2, 0.205, 0.2055],
    metricoptMetric: [0.2, 0.16, 0.153],
    ceFinetuneLoss: [0.4, 0.39, 0.38],
    metricoptLoss: [0.4, 0.42, 0.43],
    metricoptPredicted: [0.2, 0.17, 0.15],
  },
];

describe('trajectories.svg', () => {
  it('shows where metricopt, the three strongest baselines and ce_finetune ended, best first', () => {
    const svg = plotTrajectoriesSvg(curves, 'mcr', 'a9a', report(1));
    const names = [...svg.matchAll(/text-anchor="end"(?: font-weight="bold")?>([a-z_]+)<\/text>/g)].map((m) => m[1]);
    expect(names).toEqual(['prior_correction', 'ce_finetune_natural', 'threshold', 'metricopt', 'ce_finetune']);
    expect(svg).toContain('0.1493');
    expect(svg).toContain('better to the left');
  });

  it('keeps the two trajectory panels alone without a report', () => {
    const svg = plotTrajectoriesSvg(curves, 'mcr', 'a9a');
    expect(svg).not.toContain('prior_correction');
    expect(svg.match(/<polyline/g)).toHaveLength(8);
  });
});

describe('comparisons.svg', () => {
  it('says plainly that one replicate gives no interval, in the rows and under the title', () => {
    const svg = plotForestSvg(report(1));
    expect(svg).toContain('One replicate gives no interval across replicates, so no verdict');
    expect(svg).toContain('prior_correction (no interval: 1 replicate)');
    expect(svg).not.toContain('(no-interval)');
    expect(plotForestSvg(report(3))).not.toContain('One replicate');
  });

  it('has a legend for every verdict colour', () => {
    const svg = plotForestSvg(report(3));
    for (const text of ['better: the 95% CI lies wholly on the better side', 'tie: the CI spans 0', 'worse']) {
      expect(svg).toContain(`>${text}</text>`);
    }
  });

  it('labels its axis with round values', () => {
    const svg = plotForestSvg(report(3));
    const ticks = [...svg.matchAll(/text-anchor="middle">([+-]?\d+(?:\.\d+)?)<\/text>/g)].map((m) => m[1] as string);
    expect(ticks.length).toBeGreaterThanOrEqual(4);
    expect(ticks).toContain('0');
    for (const t of ticks) expect(t).toMatch(/^[+-]?\d+(\.\d{1,3})?$/);
  });
});

describe('niceTicks', () => {
  it('steps by 1, 2 or 5 times a power of ten', () => {
    expect(niceTicks(-0.0577, 0.0091)).toEqual([-0.05, -0.04, -0.03, -0.02, -0.01, 0]);
    expect(niceTicks(0.141, 0.213)).toEqual([0.15, 0.16, 0.17, 0.18, 0.19, 0.2, 0.21]);
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });
});
