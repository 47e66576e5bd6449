import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEvaluatorModule } from '../../shared/adapters/evaluator-module.in-process.js';
import { loadJobInputs } from '../../shared/adapters/job-inputs.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { parseRowContext, type RowContext } from '../../shared/data/row-context.js';
import { evaluateChecked } from '../../shared/metrics/checked-evaluator.js';
import type { EvaluationInput, Evaluator } from '../../shared/ports/evaluator.port.js';
import { checkEvaluationInput } from '../../shared/metrics/evaluator.js';
import { parseFitLabels, putFitLabels } from '../../shared/use-cases/byom/fit-inputs.js';
import { jobKeys } from '../../shared/storage/layout.js';
import { createFitJob } from '../../shared/use-cases/byom/fit-job-spec.js';
import { parseJobSpec } from '../../shared/use-cases/jobs/job-spec.js';
import { prepareRun } from '../../cli/run-options.js';
import { buildValueApi } from '../../functions/value-api/service.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from './fixtures.js';
import { fitJobSpec } from '../helpers/fit-job.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('mo-context-file-');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const ok = <T>(r: { ok: true; value: T } | { ok: false; error: unknown }): T => {
  if (!r.ok) throw r.error;
  return r.value;
};
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error?.code);

describe('parseRowContext', () => {
  it('reads a CSV with a header, rows in any order, into one column per name', () => {
    const ctx = ok(parseRowContext('row,amount,group\n2,2.5,1\n0,-1e-3,0\n\n1,7,1\n', 3));

    expect(Object.keys(ctx)).toEqual(['amount', 'group']);
    expect([...(ctx.amount as Float64Array)]).toEqual([-1e-3, 7, 2.5]);
    expect([...(ctx.group as Float64Array)]).toEqual([0, 1, 1]);
  });

  it('reads JSON lines keyed by row into the same columns as the CSV', () => {
    const csv = ok(parseRowContext('amount,row\n0.1,1\n0.30000000000000004,0\n', 2));
    const jsonl = ok(parseRowContext('{"row": 1, "amount": 0.1}\n{"row": 0, "amount": 0.30000000000000004}\n', 2));

    expect(jsonl).toEqual(csv);
    expect(csv.amount?.[0]).toBe(0.30000000000000004);
  });

  it.each([
    ['an unknown row', 'row,a\n0,1\n1,1\n3,1\n', 'CONTEXT_UNKNOWN_ROW', /row 3 is not in the data set \(it has 3 rows/],
    ['a negative row', 'row,a\n-1,1\n', 'CONTEXT_UNKNOWN_ROW', /row "-1" is not a row index/],
    ['a missing row', 'row,a\n0,1\n2,1\n', 'CONTEXT_MISSING_ROW', /row 1 of the data set has no context \(1 of 3/],
    ['a non-numeric value', 'row,a\n0,1\n1,abc\n2,1\n', 'CONTEXT_VALUE', /line 3: a is "abc", not a finite number/],
    ['an empty value', 'row,a,b\n0,1,\n', 'CONTEXT_VALUE', /b is "", not a finite number/],
    ['an infinite value', 'row,a\n0,Infinity\n', 'CONTEXT_VALUE', /Infinity/],
    ['a duplicate row', 'row,a\n0,1\n1,1\n0,2\n', 'CONTEXT_DUPLICATE', /line 4: row 0 appears twice/],
    ['a duplicate column', 'row,a,a\n0,1,2\n', 'CONTEXT_DUPLICATE', /column 'a' appears twice/],
    ['a line of the wrong length', 'row,a,b\n0,1,2\n1,1\n', 'CONTEXT_MALFORMED', /line 3: 2 fields; the header has 3/],
    ['no row column', 'id,a\n0,1\n', 'CONTEXT_MALFORMED', /no 'row' column/],
    ['no context column', 'row\n0\n', 'CONTEXT_MALFORMED', /no context columns/],
    ['a bad column name', 'row,unit cost\n0,1\n', 'CONTEXT_MALFORMED', /column name "unit cost"/],
    ['an empty file', '\n\n', 'CONTEXT_MALFORMED', /empty/],
    ['a JSON line that is not JSON', '{"row":0,"a":1}\n{"row":1,\n', 'CONTEXT_MALFORMED', /line 2: not JSON/],
    ['a JSON value given as text', '{"row":0,"a":"1"}\n', 'CONTEXT_VALUE', /a is "1", not a finite number/],
    ['JSON lines with other keys', '{"row":0,"a":1}\n{"row":1,"b":1}\n', 'CONTEXT_MALFORMED', /missing a, extra b/],
    ['a JSON row past the end', '{"row":0,"a":1}\n{"row":9,"a":1}\n', 'CONTEXT_UNKNOWN_ROW', /row 9/],
  ])('refuses %s with its code and returns nothing', (_, text, code, message) => {
    const r = parseRowContext(text, 3, 'ctx.csv');

    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(code);
    expect(r.error.message).toMatch(/^ctx\.csv: /);
    expect(r.error.message).toMatch(message);
  });
});

describe('checkEvaluationInput with rows and context', () => {
  const base: EvaluationInput = { scores: Float32Array.from([0.1, 0.9]), labels: Int32Array.from([0, 1]), classes: 2 };

  it.each([
    ['rows of another length', { rows: Int32Array.from([0]) }, 'rows'],
    ['a negative row', { rows: Int32Array.from([0, -4]) }, 'rows'],
    ['a context column of another length', { context: { a: Float64Array.from([1, 2, 3]) } }, 'context'],
  ])('is METRIC_INPUT_INVALID for %s', (_, extra, reason) => {
    const e = checkEvaluationInput('m', { ...base, ...extra });

    expect(e?.code).toBe('METRIC_INPUT_INVALID');
    expect(e?.details).toMatchObject({ reason });
  });

  it('accepts rows and context of the labels length', () => {
    expect(
      checkEvaluationInput('m', { ...base, rows: Int32Array.from([5, 2]), context: { a: new Float64Array(2) } }),
    ).toBeUndefined();
  });

  it('stops a mismatched context before the evaluator runs, in process and on the queued oracle alike', async () => {
    let calls = 0;
    const e: Evaluator = {
      name: 'm',
      direction: 'minimize',
      evaluate: () => {
        calls++;
        return 0.5;
      },
    };
    const bad = { labels: base.labels, classes: 2, rows: Int32Array.from([0, 1]), context: { a: new Float64Array(3) } };
    const viaChecked = await evaluateChecked(e, { ...base, ...bad });
    const store = new FsObjectStore(join(dir, 'mismatch'));
    const queue = new LocalQueue(join(dir, 'mismatch-queue'), { visibilityTimeoutMs: 1000, maxReceiveCount: 1 });
    const queued = new QueuedMetricOracle({ queue, store, metric: { name: 'm', direction: 'minimize' } });
    await queued.registerSplit('val', bad);
    const [viaQueue] = await queued.evaluate([{ jobId: 'j', taskId: 0, step: 0, split: 'val', scores: base.scores }]);

    expect(codeOf(viaChecked as never)).toBe('METRIC_INPUT_INVALID');
    expect(viaQueue?.ok || viaQueue?.error.code).toBe('METRIC_INPUT_INVALID');
    expect((await queue.counts()).visible).toBe(0); // nothing was sent
    expect(calls).toBe(0);
    queue.close();
  });
});

describe('docs/examples/instance-cost.mjs', () => {
  it('weighs a missed positive by its amount and a false alarm by 1, in [0, 1]', async () => {
    const example = ok(await loadEvaluatorModule(resolve('docs/examples/instance-cost.mjs')));
    const context: RowContext = { amount: Float64Array.from([100, 5, 0, 0]) };
    // Row 0 (positive, amount 100) caught, row 1 (positive, amount 5) missed, row 2 a false alarm, row 3 right.
    const input = {
      scores: Float32Array.from([0.9, 0.1, 0.8, 0.2]),
      labels: Int32Array.from([1, 1, 0, 0]),
      classes: 2,
      rows: Int32Array.from([7, 3, 0, 1]),
      context,
    };

    const r = await evaluateChecked(example, input);

    expect(r.ok && r.value.value).toBeCloseTo((5 + 1) / (100 + 5 + 1 + 1), 12);
  });

  it('fails with EVALUATOR_FAILED, naming the missing column, when the run has no context', async () => {
    const example = ok(await loadEvaluatorModule(resolve('docs/examples/instance-cost.mjs')));

    const r = await evaluateChecked(example, { scores: new Float32Array(1), labels: Int32Array.from([1]), classes: 2 });

    expect(r.ok || [r.error.code, r.error.message]).toEqual([
      'EVALUATOR_FAILED',
      expect.stringMatching(/needs a context column "amount"/),
    ]);
  });
});

describe('fit labels upload with rows and context', () => {
  const spec = fitJobSpec('fit-upload', 'mcr', 'vf');

  it.each([
    ['rows of another length', { rows: [0] }, /rows: rows must have one entry per label/],
    ['a repeated row', { rows: [4, 4] }, /rows: rows must not repeat a row/],
    ['a negative row', { rows: [0, -1] }, /rows\.1: rows must be integers >= 0/],
    [
      'a context column of another length',
      { context: { a: [1] } },
      /context: every context column must have one value per label/,
    ],
    [
      'a non-numeric context value',
      { context: { a: [1, 'x'] } },
      /context\.a\.1: context values must be finite numbers/,
    ],
    ['a bad context column name', { context: { 'a b': [1, 2] } }, /context/],
  ])('refuses %s with PREDICTIONS_INVALID and stores nothing', async (_, extra, message) => {
    const store = new FsObjectStore(join(dir, `fit-${Math.random().toString(36).slice(2)}`));
    expect((await createFitJob(store, spec)).ok).toBe(true);

    const parsed = parseFitLabels({ classes: 2, labels: [0, 1], ...extra }, 'labels.json');

    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.error.code).toBe('PREDICTIONS_INVALID');
    expect(JSON.stringify(parsed.error.details)).toMatch(message);
    expect(await store.get(jobKeys(spec.id).labels)).toBeUndefined();
  });

  it('stores rows and context with the labels, and the same upload again is not a conflict', async () => {
    const store = new FsObjectStore(join(dir, 'fit-good'));
    expect((await createFitJob(store, spec)).ok).toBe(true);
    const labels = ok(parseFitLabels({ classes: 2, labels: [0, 1], rows: [9, 3], context: { a: [0.1, 1e300] } }));

    expect(ok(await putFitLabels(store, spec.id, labels)).created).toBe(true);
    expect(ok(await putFitLabels(store, spec.id, labels)).created).toBe(false);
    const other = ok(parseFitLabels({ classes: 2, labels: [0, 1], rows: [3, 9] }));
    expect(codeOf((await putFitLabels(store, spec.id, other)) as never)).toBe('PREDICTIONS_CONFLICT');
  });
});

describe('POST /v1/fit-jobs/{id}/labels with rows and context', () => {
  it('stores labels with rows and many context columns, and refuses a mismatched column with 400 and nothing stored', async () => {
    const store = new FsObjectStore(join(dir, 'api'));
    const { app } = buildValueApi({ store, auth: { mode: 'none' }, maxBodyBytes: 1 << 20, maxRows: 64, refreshMs: 0 });
    const post = (path: string, body: unknown) =>
      app.request(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const created = await post('/v1/fit-jobs', {
      id: 'api-ctx',
      metric: { name: 'mcr', direction: 'minimize' },
      output: { valueFunctionId: 'vf' },
    });
    expect(created.status).toBe(201);
    const context = Object.fromEntries(Array.from({ length: 40 }, (_, j) => [`c${j}`, [j, j - 40, j / 3]]));

    const bad = await post('/v1/fit-jobs/api-ctx/labels', { classes: 2, labels: [0, 1, 1], context: { a: [1] } });
    const storedAfterBad = await store.get(jobKeys('api-ctx').labels);
    const good = await post('/v1/fit-jobs/api-ctx/labels', { classes: 2, labels: [0, 1, 1], rows: [8, 2, 5], context });

    expect([bad.status, ((await bad.json()) as { error: { code: string } }).error.code]).toEqual([
      400,
      'PREDICTIONS_INVALID',
    ]);
    expect(storedAfterBad).toBeUndefined();
    expect(good.status).toBe(201);
    const stored = JSON.parse(new TextDecoder().decode(await store.get(jobKeys('api-ctx').labels)));
    expect(stored).toEqual({ classes: 2, labels: [0, 1, 1], rows: [8, 2, 5], context });
  });
});

describe('metricopt demo --context', () => {
  async function dataset(): Promise<string> {
    const path = join(dir, 'small.libsvm');
    const lines = Array.from({ length: 60 }, (_, i) => `${i % 3 === 0 ? 1 : -1} 1:${(i % 7) / 7} 2:${(i % 5) / 5}`);
    await writeFile(path, `${lines.join('\n')}\n`);
    return path;
  }

  it.each([
    [
      'an unknown row',
      (rows: number) => `row,a\n${Array.from({ length: rows + 1 }, (_, i) => `${i},1`).join('\n')}\n`,
      'CONTEXT_UNKNOWN_ROW',
    ],
    [
      'a missing row',
      (rows: number) => `row,a\n${Array.from({ length: rows - 1 }, (_, i) => `${i},1`).join('\n')}\n`,
      'CONTEXT_MISSING_ROW',
    ],
    ['a non-numeric value', () => 'row,a\n0,cheap\n', 'CONTEXT_VALUE'],
  ])('refuses a context file with %s with its code before anything is written', async (_, text, code) => {
    const data = await dataset();
    const ctx = join(dir, `ctx-${code}.csv`);
    await writeFile(ctx, text(60));
    const out = join(dir, `out-${code}`);

    const r = await runCli(['demo', '--dataset', data, '--context', ctx, '--out', out, '--backend', 'cpu']);

    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`[${code}]`);
    expect(existsSync(out)).toBe(false);
  });

  it('makes train refuse a bad context file before the job is stored', async () => {
    const ctx = join(dir, 'ctx-dup.csv');
    await writeFile(ctx, 'row,a,a\n0,1,2\n');
    const store = join(dir, 'train-store');

    const r = await runCli([
      'train',
      '--dataset',
      await dataset(),
      '--context',
      ctx,
      '--store',
      store,
      '--job-id',
      'j',
    ]);

    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('[CONTEXT_DUPLICATE]');
    expect(existsSync(store) ? await readdir(store, { recursive: true }) : []).toEqual([]);
  });

  it('refuses a context file that does not exist with CONTEXT_NOT_FOUND', async () => {
    const r = await runCli([
      'demo',
      '--dataset',
      await dataset(),
      '--context',
      join(dir, 'nope.csv'),
      '--out',
      join(dir, 'o'),
    ]);

    expect(r.stderr).toContain('[CONTEXT_NOT_FOUND]');
    expect(existsSync(join(dir, 'o'))).toBe(false);
  });
});

describe('the data set context of a run or a job', () => {
  it('is the --context file read with the data set by prepareRun (demo, train)', async () => {
    const data = join(dir, 'run.libsvm');
    await writeFile(data, `${Array.from({ length: 60 }, (_, i) => `${i % 2} 1:${i / 60}`).join('\n')}\n`);
    const ctx = join(dir, 'run-ctx.csv');
    await writeFile(
      ctx,
      `row,amount\n${Array.from({ length: 60 }, (_, i) => `${59 - i},${(59 - i) * 0.5}`).join('\n')}\n`,
    );

    const run = await prepareRun({ dataset: data, context: ctx, metric: 'mcr', backend: 'cpu' });

    expect(Object.keys(run.dataset.context ?? {})).toEqual(['amount']);
    expect(Array.from(run.dataset.context?.amount ?? [])).toEqual(Array.from({ length: 60 }, (_, i) => i * 0.5));
  });

  it("is a training job's dataset.context, loaded by the training container with the data set", async () => {
    const data = join(dir, 'job.libsvm');
    await writeFile(data, `${Array.from({ length: 60 }, (_, i) => `${i % 2} 1:${i / 60}`).join('\n')}\n`);
    const ctx = join(dir, 'job-ctx.jsonl');
    await writeFile(ctx, `${Array.from({ length: 60 }, (_, i) => JSON.stringify({ row: i, amount: i })).join('\n')}\n`);
    const spec = ok(
      parseJobSpec({
        format: 'metricopt.job',
        schemaVersion: 1,
        id: 'ctx-job',
        dataset: { source: data, context: ctx },
        metric: { module: resolve('docs/examples/instance-cost.mjs') },
        output: { valueFunctionId: 'vf' },
      }),
    );

    const { dataset, evaluator } = await loadJobInputs(spec);
    const amount = dataset.context?.amount ?? new Float64Array();
    // Rows 9 and 3 are positives scored negative: cost 9 + 3 of 9 + 3 + 1 (row 4, a negative, right).
    const rows = Int32Array.from([9, 3, 4]);
    const r = await evaluateChecked(evaluator, {
      scores: Float32Array.from([0.1, 0.2, 0.3]),
      labels: Int32Array.from([1, 1, 0]),
      classes: 2,
      rows,
      context: { amount: Float64Array.from(rows, (i) => amount[i] as number) },
    });

    expect(Array.from(amount)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(r.ok && r.value.value).toBeCloseTo(12 / 13, 12);
  });

  it('derives in the training container the columns a built-in context metric and dataset.groupFeature need, as the CLI does', async () => {
    const data = join(dir, 'job-derived.libsvm');
    await writeFile(
      data,
      `${Array.from({ length: 60 }, (_, i) => `${i % 2} 1:${i / 60} ${i % 3 === 0 ? '2:1' : ''}`).join('\n')}\n`,
    );
    const spec = ok(
      parseJobSpec({
        format: 'metricopt.job',
        schemaVersion: 1,
        id: 'derived-job',
        dataset: { source: data, groupFeature: 1 },
        metric: { builtin: 'instance-cost' },
        output: { valueFunctionId: 'vf' },
      }),
    );

    const { dataset } = await loadJobInputs(spec);
    const cli = await prepareRun({ dataset: data, metric: 'instance-cost', groupFeature: 1, backend: 'cpu' });

    expect(Object.keys(dataset.context ?? {}).sort()).toEqual(['amount', 'group']);
    expect(Array.from(dataset.context?.group ?? [])).toEqual(
      Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? 1 : 0)),
    );
    expect(dataset.context).toEqual(cli.dataset.context);
  });
});
