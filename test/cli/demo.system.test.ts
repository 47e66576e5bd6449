import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { demoReportSchema } from '../../shared/schemas/report.js';
import { loadCheckpoint } from '../../shared/storage/value-function-store.js';
import { runCli as run } from '../helpers/cli.js';
import { smallA9a, tinyFlags } from '../jobs/fixtures.js';

let dir: string;
let small: string;

const tiny = [...tinyFlags, '--seeds', '2'];

beforeAll(async () => {
  // 2,000 rows of A9A keep the end-to-end run to seconds.
  ({ dir, file: small } = await smallA9a(2000));
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('metricopt demo', () => {
  it('runs the whole pipeline and writes report, plot and a loadable checkpoint', async () => {
    const out = join(dir, 'out');
    const r = await run(['demo', '--dataset', small, '--features', '123', '--out', out, '--json', ...tiny]);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    const report = demoReportSchema.parse(JSON.parse(r.stdout));
    const res = report.results;
    expect(res.metricopt?.runs).toHaveLength(1);
    expect(res.metricopt?.runs[0]).toHaveLength(2);
    expect(res.ce_finetune_dense_eval?.queries).toBe(7);
    // The default start is the decision shift: its threshold search costs what the threshold
    // baseline spends; then 5 along the path + the pre-trained point + the best observed phi +
    // the decision-shifted point, each queried afresh on the even selection rows, + 2 on the odd
    // rows when a challenger beat the start there (queries are the mean over the 2 seeds).
    const thresholdQueries = res.threshold?.queries as number;
    expect(thresholdQueries).toBeGreaterThan(0);
    expect(thresholdQueries).toBeLessThanOrEqual(10);
    const mq = (res.metricopt?.queries as number) - thresholdQueries;
    expect([8, 9, 10]).toContain(mq);
    expect(res.metricopt?.totalQueries).toBe(thresholdQueries + mq + 12 * 3);
    expect(res.best_observed?.totalQueries).toBe(12 * 3);
    // Random search and the threshold search get metricopt's planned candidates: 8 + 2.
    expect(res.random_search?.queries).toBe(10);
    // The black-box peers at the total budget are opt-in (--black-box-peers true).
    expect(report.skipped.cma_es).toContain('--black-box-peers true');
    const e = report.metricoptEndpoints;
    expect(e.path + e.start + e.decision_shift + e.best_observed).toBe(2);
    expect(Object.keys(res).sort()).toEqual([
      'best_observed',
      'ce',
      'ce_finetune',
      'ce_finetune_dense_eval',
      'ce_finetune_natural',
      'metricopt',
      'prior_correction',
      'random_search',
      'threshold',
    ]);
    // Headroom on the reported rows: a global threshold for mcr, no context rule without context.
    expect(report.headroom?.globalThreshold?.mean).toBeGreaterThan(0);
    expect(report.headroom?.contextRule).toBeNull();
    for (const m of Object.values(res)) for (const v of m.runs.flat()) expect(v).toBeGreaterThanOrEqual(0);
    // One replicate: no interval, and the report says so.
    expect(res.metricopt?.ci95).toBeNull();
    expect(report.comparisons.threshold?.verdict).toBe('no-interval');
    expect(report.notes.join(' ')).toContain('no confidence interval can be given');
    expect(await readFile(join(out, 'comparisons.svg'), 'utf8')).toContain('<circle');
    expect(JSON.parse(await readFile(join(out, 'report.json'), 'utf8'))).toEqual(report);
    expect(await readFile(join(out, 'trajectories.svg'), 'utf8')).toContain('<polyline');
    const ck = await loadCheckpoint(new FsObjectStore(join(out, 'store')), report.valueFunction.id);
    expect(ck.ok && ck.value.d).toBe(17); // 16 input dynamic biases + 1 output bias
    expect(ck.ok && ck.value.metric).toEqual({ name: 'mcr', direction: 'minimize' });
  });

  it('gives the same results and checkpoint with --threads 1 and --threads 2, and times every stage', async () => {
    const runWith = async (threads: string) => {
      const out = join(dir, `threads-${threads}`);
      const r = await run([
        'demo',
        '--dataset',
        small,
        '--features',
        '123',
        '--out',
        out,
        '--json',
        '--threads',
        threads,
        ...tiny,
      ]);
      expect(r.code).toBe(0);
      const report = demoReportSchema.parse(JSON.parse(r.stdout));
      const ck = await loadCheckpoint(new FsObjectStore(join(out, 'store')), report.valueFunction.id);
      if (!ck.ok) throw ck.error;
      return { report, checkpoint: ck.value };
    };
    const one = await runWith('1');
    const two = await runWith('2');
    const t = two.report.replicates[0]?.timings;
    // The stages' differences of timestamps add up to the whole's within rounding (seen: 1 ulp over).
    expect(t && t.trajectoriesS + t.queriesS + t.fitS).toBeLessThanOrEqual((t?.metaTrainS ?? 0) + 1e-9);
    expect(t && Math.min(t.pretrainS, t.trajectoriesS, t.queriesS, t.fitS, t.metaTestS)).toBeGreaterThan(0);
    const results = (x: typeof one) => ({
      ...x.report,
      replicates: x.report.replicates.map(({ timings: _, ...r }) => r),
    });
    expect(results(two)).toEqual(results(one));
    expect(JSON.stringify({ ...two.checkpoint, createdAt: '' })).toBe(
      JSON.stringify({ ...one.checkpoint, createdAt: '' }),
    );
    const bad = await run(['demo', '--dataset', small, '--features', '123', '--threads', '0', ...tiny]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--threads');
  });

  it('runs a context cell: instance cost, the low-rank adapter, the decision-shifted start, rows reaching the evaluator', async () => {
    const out = join(dir, 'ctx');
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--features',
      '123',
      '--metric',
      'instance-cost',
      '--adapter',
      'low-rank',
      '--adapter-rank',
      '4',
      '--start',
      'decision-shift',
      '--endpoint-rule',
      'confirm',
      '--black-box-peers',
      'true',
      '--out',
      out,
      '--json',
      ...tiny,
    ]);
    expect(r.code).toBe(0);
    const report = demoReportSchema.parse(JSON.parse(r.stdout));
    expect(report.metric).toBe('instance-cost');
    expect(report.headroom?.rule).toBe('bayes-instance-cost');
    // The per-row rule can only do as well or better than one threshold, on the same rows.
    expect(report.headroom?.contextRule?.mean).toBeLessThanOrEqual(report.headroom?.globalThreshold?.mean as number);
    const e = report.metricoptEndpoints;
    expect(e.path + e.start + e.decision_shift + e.best_observed).toBe(2);
    // The black-box peers spend metricopt's total: meta-training's 36 queries and its own.
    const total = 12 * 3 + (report.results.metricopt?.queries as number);
    expect(report.results.random_search_total?.queries).toBe(total);
    expect(report.results.cma_es?.queries).toBe(total);
    expect(report.results.metricopt?.totalQueries).toBe(total);
    const ck = await loadCheckpoint(new FsObjectStore(join(out, 'store')), report.valueFunction.id);
    expect(ck.ok && ck.value.adapter).toEqual({ kind: 'low-rank', d: 16 + 4 + 1 });
  });

  it('runs a context cell with the context adapter: one logit weight per context column, the peers on the same phi', async () => {
    const out = join(dir, 'ctx-adapter');
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--features',
      '123',
      '--metric',
      'group-balanced-error',
      '--group-feature',
      '71',
      '--adapter',
      'context',
      '--start',
      'decision-shift',
      '--black-box-peers',
      'true',
      '--out',
      out,
      '--json',
      ...tiny,
    ]);
    expect(r.code).toBe(0);
    const report = demoReportSchema.parse(JSON.parse(r.stdout));
    expect(report.headroom?.rule).toBe('group-thresholds');
    expect(report.results.cma_es?.queries).toBe(12 * 3 + (report.results.metricopt?.queries as number));
    const ck = await loadCheckpoint(new FsObjectStore(join(out, 'store')), report.valueFunction.id);
    // 16 input biases, one weight for the `group` column, the output bias.
    expect(ck.ok && ck.value.adapter).toEqual({ kind: 'context', d: 16 + 1 + 1 });
  });

  it('spends --online-queries in the value-function-guided search, and the peers as many more', async () => {
    const args = (extra: string[]) => [
      'demo',
      '--dataset',
      small,
      '--features',
      '123',
      '--metric',
      'instance-cost',
      '--adapter',
      'low-rank',
      '--adapter-rank',
      '4',
      '--start',
      'decision-shift',
      // The plain rule: the online search replaces the confirmation's two looks.
      '--endpoint-rule',
      'best',
      '--black-box-peers',
      'true',
      '--json',
      ...tiny,
      ...extra,
    ];
    const off = await run([...args(['--out', join(dir, 'online-off')])]);
    const on = await run([
      ...args(['--out', join(dir, 'online-on'), '--online-queries', '40', '--online-recheck', '4']),
    ]);
    expect(off.code).toBe(0);
    expect(on.code).toBe(0);
    const a = demoReportSchema.parse(JSON.parse(off.stdout));
    const b = demoReportSchema.parse(JSON.parse(on.stdout));
    // Same path and candidates; 40 more real queries per seed (36 searching, 4 re-scoring).
    expect(b.results.metricopt?.queries).toBe((a.results.metricopt?.queries as number) + 40);
    const total = 12 * 3 + (b.results.metricopt?.queries as number);
    expect(b.results.cma_es?.queries).toBe(total);
    expect(b.results.random_search_total?.queries).toBe(total);
    const e = b.metricoptEndpoints;
    expect(e.path + e.start + e.decision_shift + e.best_observed + (e.online ?? 0)).toBe(2);
  });

  it('hands every evaluator call of the in-process path the dataset rows it scores', async () => {
    const mod = join(dir, 'rows.mjs');
    // Fails unless rows arrive, one per label, as distinct dataset indices within the file.
    await writeFile(
      mod,
      `export default { name: 'rows-check', direction: 'minimize', evaluate({ scores, labels, rows }) {
        if (!rows || rows.length !== labels.length || new Set(rows).size !== rows.length) throw new Error('rows missing');
        for (const r of rows) if (r < 0 || r >= 2000) throw new Error('row out of range');
        let wrong = 0; for (let i = 0; i < labels.length; i++) if ((scores[i] >= 0.5 ? 1 : 0) !== labels[i]) wrong++;
        return wrong / labels.length; } };`,
    );
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--evaluator',
      mod,
      '--out',
      join(dir, 'o-rows'),
      '--json',
      ...tiny,
    ]);
    expect(r.code).toBe(0);
    const report = demoReportSchema.parse(JSON.parse(r.stdout));
    expect(report.results.metricopt?.missing).toBe(0);
    expect(report.results.ce?.missing).toBe(0);
  });

  it('plugs in a user evaluator module and runs the paper recipe', async () => {
    const mod = join(dir, 'recall.mjs');
    await writeFile(
      mod,
      `export default { name: 'recall', direction: 'maximize', evaluate({ scores, labels }) {
        let tp = 0, p = 0; for (let i = 0; i < labels.length; i++) if (labels[i] === 1) { p++; if (scores[i] >= 0.5) tp++; }
        return p === 0 ? 1 : tp / p; } };`,
    );
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--evaluator',
      mod,
      '--recipe',
      'paper',
      '--out',
      join(dir, 'o2'),
      '--json',
      ...tiny,
    ]);
    expect(r.code).toBe(0);
    const report = demoReportSchema.parse(JSON.parse(r.stdout));
    expect(report.metric).toBe('recall');
    expect(report.direction).toBe('maximize');
    expect(report.recipe).toBe('paper');
    expect(report.results.metricopt?.queries).toBe(0);
  });

  it('runs replicates that differ, and a replicate reproduces exactly from its base seed', async () => {
    const two = await run([
      'demo',
      '--dataset',
      small,
      '--out',
      join(dir, 'rep2'),
      '--json',
      '--replicates',
      '2',
      ...tiny,
    ]);
    expect(two.code).toBe(0);
    const a = demoReportSchema.parse(JSON.parse(two.stdout));
    expect(a.replicates.map((r) => r.seed)).toEqual([1, 1001]);
    const mo = a.results.metricopt;
    expect(mo?.perReplicate).toHaveLength(2);
    expect(mo?.ci95).not.toBeNull();
    // Different splits and models: the baselines' values differ between replicates.
    expect(a.results.ce?.perReplicate[0]).not.toBe(a.results.ce?.perReplicate[1]);
    expect(a.comparisons.ce_finetune_natural?.perReplicate).toHaveLength(2);
    expect(['better', 'tie', 'worse']).toContain(a.comparisons.ce_finetune_natural?.verdict);

    const one = await run([
      'demo',
      '--dataset',
      small,
      '--out',
      join(dir, 'rep1'),
      '--json',
      '--seed',
      '1001',
      ...tiny,
    ]);
    const b = demoReportSchema.parse(JSON.parse(one.stdout));
    for (const name of ['ce', 'ce_finetune_natural', 'threshold', 'best_observed', 'metricopt'] as const) {
      expect(b.results[name]?.runs[0]).toEqual(a.results[name]?.runs[1]);
    }
    expect(b.replicates[0]?.valueFunction.spearman).toBe(a.replicates[1]?.valueFunction.spearman);
  });
});

describe('metricopt bad input', () => {
  const cases: [string, string[], string][] = [
    ['a missing file', ['--dataset', '/nonexistent/x.libsvm'], 'DATASET_NOT_FOUND'],
    ['an unknown metric', ['--metric', 'nope'], 'UNKNOWN_METRIC'],
  ];
  it.each(cases)('ends %s with one line and a non-zero exit', async (_name, args, code) => {
    const r = await run(['demo', ...args, '--out', join(dir, 'bad')]);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`[${code}]`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('names the line of a malformed LIBSVM file', async () => {
    const bad = join(dir, 'bad.libsvm');
    await writeFile(bad, '1 1:1\n-1 2:1\n1 3:oops\n');
    const r = await run(['demo', '--dataset', bad, '--out', join(dir, 'bad')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^metricopt: error \[LIBSVM_MALFORMED\]: bad: line 3: token '3:oops'/);
  });

  it.each([
    ['throws', "throw new Error('licence server down')", 'EVALUATOR_FAILED', 'licence server down'],
    ['returns NaN', 'return NaN', 'EVALUATOR_INVALID_VALUE', 'NaN'],
  ])('stops at once when the evaluator module %s', async (name, body, code, fragment) => {
    const mod = join(dir, `bad-${name}.mjs`);
    await writeFile(mod, `export default { name: 'bad', direction: 'minimize', evaluate() { ${body}; } };`);
    const r = await run(['demo', '--dataset', small, '--evaluator', mod, '--out', join(dir, 'bad'), ...tiny]);
    expect(r.code).toBe(1);
    const last = r.stderr.trim().split('\n').at(-1) ?? '';
    expect(last).toContain(`[${code}]`);
    expect(last).toContain(fragment);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('runs through the queue with --retry-delay-ms, and refuses a negative one', async () => {
    const mod = join(dir, 'flaky-queue.mjs');
    await writeFile(
      mod,
      `let calls = 0;
      export default { name: 'flaky-q', direction: 'minimize', evaluate({ scores, labels }) {
        if (++calls % 4 === 0) throw new Error('flaky #' + calls);
        let wrong = 0; for (let i = 0; i < labels.length; i++) if ((scores[i] >= 0.5 ? 1 : 0) !== labels[i]) wrong++;
        return wrong / labels.length; } };`,
    );
    const bad = await run(['demo', '--via-queue', '--retry-delay-ms', '-1', '--out', join(dir, 'q-bad')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('expected an integer >= 0');
    const out = join(dir, 'q');
    const r = await run([
      ...['demo', '--dataset', small, '--evaluator', mod, '--via-queue', '--workers', '1'],
      ...['--retry-delay-ms', '0', '--out', out, '--json', ...tiny],
    ]);
    expect(r.code).toBe(0);
    const report = demoReportSchema.parse(JSON.parse(r.stdout));
    expect(report.replicates[0]?.metaTrain.queriesSent).toBe(36);
    // Failed deliveries were retried (attempt 2 or 3 in the result records).
    const store = new FsObjectStore(join(out, 'queue', 'store'));
    const keys = (await store.list('jobs/')).filter((k) => k.includes('/results/'));
    const attempts = await Promise.all(
      keys.map(
        async (k) => (JSON.parse(Buffer.from((await store.get(k)) ?? []).toString()) as { attempt: number }).attempt,
      ),
    );
    expect(attempts.some((a) => a > 1)).toBe(true);
  });

  it('rejects an evaluator module without the required shape', async () => {
    const mod = join(dir, 'shape.mjs');
    await writeFile(mod, `export default { name: 'x', evaluate() { return 0; } };`);
    const r = await run(['demo', '--evaluator', mod, '--out', join(dir, 'bad')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[EVALUATOR_MODULE_INVALID]');
    expect(r.stderr).toContain('direction');
  });

  it('prints help for every subcommand', async () => {
    for (const sub of ['demo', 'train']) {
      const r = await run([sub, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('--dataset');
    }
  });
});

describe('metricopt demo with a flaky evaluator', () => {
  it('retries transient failures and reports scores that still fail as missing, never a crash', async () => {
    // Throws on every 5th call (a transient failure the retry absorbs), and always on inputs of
    // one length, the test split's here: those scores are missing after their retries.
    const mod = join(dir, 'flaky.mjs');
    await writeFile(
      mod,
      `let calls = 0;
      export default { name: 'flaky-mcr', direction: 'minimize', evaluate({ scores, labels }) {
        calls++;
        if (calls % 5 === 0) throw new Error('flaky evaluator failure #' + calls);
        if (labels.length === Number(process.env.MO_FAIL_LENGTH)) throw new Error('scorer down for this split');
        let wrong = 0; for (let i = 0; i < labels.length; i++) if ((scores[i] >= 0.5 ? 1 : 0) !== labels[i]) wrong++;
        return wrong / labels.length; } };`,
    );
    // 2,000 rows: 70/10/20 split gives 400 test rows.
    process.env.MO_FAIL_LENGTH = '400';
    try {
      const r = await run([
        'demo',
        '--dataset',
        small,
        '--evaluator',
        mod,
        '--out',
        join(dir, 'flaky'),
        '--json',
        ...tiny,
      ]);
      expect(r.code).toBe(0);
      const report = demoReportSchema.parse(JSON.parse(r.stdout));
      expect(Object.keys(report.results)).toHaveLength(0);
      expect(report.skipped.metricopt).toContain('every test score failed after 3 attempts');
      expect(report.replicates[0]?.metaTrain.queriesFailed).toBe(0);
    } finally {
      delete process.env.MO_FAIL_LENGTH;
    }
    const ok = await run([
      'demo',
      '--dataset',
      small,
      '--evaluator',
      mod,
      '--out',
      join(dir, 'flaky2'),
      '--json',
      ...tiny,
    ]);
    expect(ok.code).toBe(0);
    const report = demoReportSchema.parse(JSON.parse(ok.stdout));
    expect(report.results.metricopt?.missing).toBe(0);
    expect(report.replicates[0]?.metaTrain.queriesFailed).toBe(0);
  });
});
