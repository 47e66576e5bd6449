import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { formatResultsTable } from '../../shared/report/table.js';
import { demoReportSchema, lossOnlyBaselines } from '../../shared/schemas/report.js';
import { runCli } from '../helpers/cli.js';
import { tinyFlags } from '../jobs/fixtures.js';

// Two whole demo runs on the 8x8 digits (ConvNet, FiLM), in process but with the built compute
// pool's worker (hence a system test): seconds each on a quiet machine, more on the shared one.
vi.setConfig({ testTimeout: 120_000 });

const ML = ['metric_learning_finetune', 'metric_learning_finetune_dense_eval'] as const;

/** A tiny demo on the digits ConvNet (the smallest image set with an embedding head), one seed. */
async function demo(metric: string) {
  const out = join(await mkdtemp(join(tmpdir(), 'ml-baseline-')), 'out');
  const r = await runCli([
    'demo',
    '--dataset',
    'digits',
    '--architecture',
    'convnet',
    '--metric',
    metric,
    '--seeds',
    '1',
    '--out',
    out,
    '--json',
    ...tinyFlags,
  ]);
  expect([r.code, r.stderr]).toEqual([0, expect.not.stringContaining('error')]);
  return demoReportSchema.parse(JSON.parse(r.stdout));
}

describe('the metric-learning baselines in a demo report', () => {
  it('run for recall-at-1 as loss-only baselines: last step without a query, dense-eval with T + 1', async () => {
    const report = await demo('recall-at-1');
    const last = report.results.metric_learning_finetune;
    const dense = report.results.metric_learning_finetune_dense_eval;
    expect([last?.queries, dense?.queries]).toEqual([0, 6 + 1]);
    for (const m of [last, dense]) {
      expect(m?.runs[0]?.[0]).toBeGreaterThan(0);
      expect(m?.runs[0]?.[0]).toBeLessThanOrEqual(1);
    }
    // Dense-eval knows the validation value of the step it kept; the last step does not.
    expect(dense?.valRuns[0]?.[0]).toBeGreaterThan(0);
    expect(last?.valRuns[0]?.[0]).toBeNull();
    // metricopt is compared against both, as against the cross-entropy loss-only baselines.
    for (const name of ML) {
      expect(lossOnlyBaselines).toContain(name);
      expect(report.comparisons[name]?.verdict).toBe('no-interval');
    }
    expect(formatResultsTable(report)).toContain('metric_learning_finetune_dense_eval');
  });

  it('are absent, not skipped, for a metric of the probabilities (mcr on the same model)', async () => {
    const report = await demo('mcr');
    expect(report.results.ce_finetune).toBeDefined();
    for (const name of ML) {
      expect(report.results[name]).toBeUndefined();
      expect(report.skipped[name]).toBeUndefined();
      expect(report.comparisons[name]).toBeUndefined();
    }
    expect(formatResultsTable(report)).not.toContain('metric_learning');
  });
});
