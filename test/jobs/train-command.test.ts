import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { loadCheckpoint } from '../../shared/storage/value-function-store.js';
import { runCli as run } from '../helpers/cli.js';
import { smallA9a, tinyFlags, tinyJob } from './fixtures.js';

let dir: string;
let small: string;

const tiny = tinyFlags;

/** The small A9A file as a data set (after beforeAll). */
const a9aFlags = () => ['--dataset', small, '--features', '123'];

beforeAll(async () => {
  const s = await smallA9a(600);
  dir = s.dir;
  small = s.file;
});

afterEach(() => vi.restoreAllMocks());

describe('metricopt train', () => {
  it('writes the checkpoint that demo meta-training writes for the same seed (apart from createdAt)', async () => {
    const out = join(dir, 'demo-out');
    const demo = await run(['demo', '--dataset', small, '--features', '123', '--out', out, '--seeds', '1', ...tiny]);
    expect(demo.code).toBe(0);
    const store = join(dir, 'train-store');
    const train = await run(['train', '--dataset', small, '--features', '123', '--store', store, ...tiny]);
    expect(train.stderr).not.toContain('error [');
    expect(train.code).toBe(0);
    expect(train.stdout).toMatch(/^checkpoint a9a-small-mcr-tuned v1 written to /);
    const a = await loadCheckpoint(new FsObjectStore(join(out, 'store')), 'a9a-small-mcr-tuned');
    const b = await loadCheckpoint(new FsObjectStore(store), 'a9a-small-mcr-tuned');
    if (!a.ok || !b.ok) throw new Error('checkpoint missing');
    expect(b.value.members).toEqual(a.value.members);
    expect({ ...b.value, createdAt: '' }).toEqual({ ...a.value, createdAt: '' });
  });

  it('runs a job file, reports it with jobs status, and resumes by --job-id to "already done"', async () => {
    const job = join(dir, 'job.json');
    await writeFile(job, JSON.stringify(tinyJob(small, 'cli-job')));
    const store = join(dir, 'job-store');
    const first = await run(['train', '--job', job, '--store', store, '--backend', 'wasm']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^checkpoint tiny-vf v1 written/);
    const again = await run(['train', '--job-id', 'cli-job', '--store', store, '--backend', 'wasm']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('job cli-job is already done: checkpoint tiny-vf v1');
    const status = await run(['jobs', 'status', 'cli-job', '--store', store]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^job cli-job: done \(stage done, backend wasm\)/);
    expect(status.stdout).toContain('tasks        12/12');
    expect(status.stdout).toContain('evaluations  36/36 sent, 36 returned, 0 failed');
    expect(status.stdout).toContain('checkpoint   tiny-vf v1');
    const json = await run(['jobs', 'status', 'cli-job', '--store', store, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ jobId: 'cli-job', state: 'done', valueFunction: { version: 1 } });
    const watch = await run(['jobs', 'status', 'cli-job', '--store', store, '--watch']);
    expect(watch.stdout).toContain('████████████████████████████ 100%');
  });

  it('trains the context adapter as demo does, its column derived in the job as in demo', async () => {
    const flags = ['--metric', 'instance-cost', '--adapter', 'context'];
    const out = join(dir, 'demo-ctx-adapter');
    expect((await run(['demo', ...a9aFlags(), '--out', out, '--seeds', '1', ...tiny, ...flags])).code).toBe(0);
    const store = join(dir, 'train-ctx-adapter');
    const train = await run(['train', ...a9aFlags(), '--store', store, '--job-id', 'ctx-adapter', ...tiny, ...flags]);
    expect(train.stderr).not.toContain('error [');
    const id = 'a9a-small-instance-cost-tuned';
    const a = await loadCheckpoint(new FsObjectStore(join(out, 'store')), id);
    const b = await loadCheckpoint(new FsObjectStore(store), id);
    if (!a.ok || !b.ok) throw new Error('checkpoint missing');
    expect({ ...b.value, createdAt: '' }).toEqual({ ...a.value, createdAt: '' });
    // 16 input biases, one weight for `amount`, the output bias.
    expect(b.value.adapter).toEqual({ kind: 'context', d: 18 });
    const spec = JSON.parse(await readFile(join(store, 'jobs', 'ctx-adapter', 'job.json'), 'utf8'));
    expect(spec.overrides).toMatchObject({ model: { adapter: { logitFeatures: 'context', outputBias: true } } });
  }, 120_000);

  it('trains with the context settings (group feature, label noise, low-rank adapter) as demo does, and keeps them in the job', async () => {
    const context = ['--metric', 'group-balanced-error', '--group-feature', '71', '--adapter', 'low-rank'];
    const noisy = [...context, '--label-noise', '0.5'];
    const out = join(dir, 'demo-ctx');
    const demo = await run(['demo', ...a9aFlags(), '--out', out, '--seeds', '1', ...tiny, ...noisy]);
    expect(demo.code).toBe(0);
    const store = join(dir, 'train-ctx');
    const train = await run(['train', ...a9aFlags(), '--store', store, '--job-id', 'ctx', ...tiny, ...noisy]);
    expect(train.stderr).not.toContain('error [');
    expect(train.code).toBe(0);
    const id = 'a9a-small-group-balanced-error-tuned';
    const a = await loadCheckpoint(new FsObjectStore(join(out, 'store')), id);
    const b = await loadCheckpoint(new FsObjectStore(store), id);
    if (!a.ok || !b.ok) throw new Error('checkpoint missing');
    expect({ ...b.value, createdAt: '' }).toEqual({ ...a.value, createdAt: '' });
    expect(b.value.adapter).toEqual({ kind: 'low-rank', d: 49 });
    const spec = JSON.parse(await readFile(join(store, 'jobs', 'ctx', 'job.json'), 'utf8'));
    expect(spec.dataset.groupFeature).toBe(71);
    expect(spec.overrides).toMatchObject({ labelNoise: 0.5, model: { adapter: { logitRank: 32 } } });
    // The noise is what made the two agree: without it the job trains another model.
    const clean = join(dir, 'train-ctx-clean');
    expect(
      (await run(['train', '--dataset', small, '--features', '123', '--store', clean, ...tiny, ...context])).code,
    ).toBe(0);
    const c = await loadCheckpoint(new FsObjectStore(clean), id);
    expect(c.ok && c.value.members).not.toEqual(b.value.members);
    // A meta-test flag is refused, not silently dropped.
    const refused = await run([
      'train',
      '--dataset',
      small,
      '--store',
      join(dir, 'no'),
      '--start',
      'decision-shift',
      '--online-queries',
      '10',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /error \[USAGE\]: --start, --online-queries: meta-test settings; train .* runs no meta-test/,
    );
  }, 240_000);

  it.each([
    ['a job file that is not JSON', '{ nope', 'JOB_SPEC_NOT_JSON'],
    ['a job without an output id', JSON.stringify({ ...tinyJob('x'), output: {} }), 'JOB_SPEC_INVALID'],
  ])('rejects %s with its code', async (_name, text, code) => {
    const job = join(dir, `bad-${code}.json`);
    await writeFile(job, text);
    const store = join(dir, `bad-store-${code}`);
    const r = await run(['train', '--job', job, '--store', store]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^metricopt: error \\[${code}\\]: ${job.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    );
    expect(await new FsObjectStore(store).list('')).toEqual([]);
  });

  it('answers JOB_NOT_FOUND for the status of an unknown job', async () => {
    const r = await run(['jobs', 'status', 'nope', '--store', join(dir, 'job-store')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^metricopt: error \[JOB_NOT_FOUND\]: no job 'nope'/);
  });
});
