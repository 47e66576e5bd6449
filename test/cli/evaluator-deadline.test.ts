import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { smallA9a, tinyFlags, tinyJob } from '../jobs/fixtures.js';

/**
 * Issue 23, item 5: every path that runs a user evaluator module runs it in worker threads with
 * a deadline. `demo --evaluator` and `train` (flags or a job file) with a module whose
 * `evaluate` never returns end with EVALUATOR_TIMEOUT instead of hanging (`fit` and serve's
 * fits: test/byom/predictions.test.ts).
 */
let dir: string;
let file: string;
let spin: string;

beforeAll(async () => {
  ({ dir, file } = await smallA9a(600));
  spin = join(dir, 'spin.mjs');
  await writeFile(spin, "export default { name: 'spin', direction: 'minimize', evaluate() { for (;;) {} } };\n");
});

/** A9A with the spinning evaluator module and a 200 ms deadline (after beforeAll). */
const spinFlags = () => ['--dataset', file, '--features', '123', '--evaluator', spin, '--evaluator-timeout-ms', '200'];

describe('a user evaluator module that never returns', () => {
  it('ends demo --evaluator with EVALUATOR_TIMEOUT at its deadline', async () => {
    const r = await runCli(['demo', ...spinFlags(), '--out', join(dir, 'demo-out'), ...tinyFlags, '--seeds', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error \[EVALUATOR_TIMEOUT\]: evaluator 'spin' did not answer in time/);
  }, 120_000);

  it('ends train --evaluator with EVALUATOR_TIMEOUT, and a job naming the module the same way', async () => {
    const flags = await runCli(['train', ...spinFlags(), '--store', join(dir, 'train-store'), ...tinyFlags]);
    expect(flags.code).toBe(1);
    expect(flags.stderr).toContain('[EVALUATOR_TIMEOUT]');
    const job = join(dir, 'spin-job.json');
    await writeFile(job, JSON.stringify({ ...tinyJob(file, 'spin-job'), metric: { module: spin } }));
    const fromJob = await runCli([
      'train',
      '--job',
      job,
      '--evaluator-timeout-ms',
      '200',
      '--store',
      join(dir, 'job-store'),
      '--backend',
      'wasm',
    ]);
    expect(fromJob.code).toBe(1);
    expect(fromJob.stderr).toContain('[EVALUATOR_TIMEOUT]');
  }, 120_000);

  it('refuses an --evaluator-timeout-ms that is not a positive integer', async () => {
    const r = await runCli(['demo', '--dataset', file, '--evaluator', spin, '--evaluator-timeout-ms', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--evaluator-timeout-ms must be a positive integer');
  });
});
