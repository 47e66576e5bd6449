import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';
import { cliPath, ensureBuiltCli } from './built-cli.js';
import { checkpointContent, smallA9a, tinyJob } from './fixtures.js';

/** SIGTERM while the value function is being fitted (a long fit: 15,000 epochs; the float32 SIMD fit ran 1,500 before the signal landed). */
const JOB = 'fit-kill-job';
let jobFile: string;
let dir: string;

beforeAll(async () => {
  ensureBuiltCli();
  const small = await smallA9a(400);
  dir = small.dir;
  jobFile = join(dir, 'job.json');
  const base = tinyJob(small.file, JOB);
  await writeFile(
    jobFile,
    JSON.stringify({
      ...base,
      overrides: {
        ...base.overrides,
        metaTrain: { ...base.overrides?.metaTrain, train: { epochs: 15000 } },
      },
    }),
  );
});

function train(store: string, onSpawn?: (kill: () => void) => void) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [cliPath, 'train', '--job', jobFile, '--store', store, '--backend', 'wasm']);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += String(b)));
    child.stderr.on('data', (b) => (stderr += String(b)));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    onSpawn?.(() => child.kill('SIGTERM'));
  });
}

const stageOf = (store: string) => {
  try {
    return (JSON.parse(readFileSync(join(store, 'jobs', JOB, 'status.json'), 'utf8')) as { stage: string }).stage;
  } catch {
    return undefined;
  }
};

describe('metricopt train --job: SIGTERM during the fit', () => {
  it('exits 0, interrupted in stage fit, and a resume ends with the uninterrupted bits', async () => {
    const reference = join(dir, 'reference');
    const ref = await train(reference);
    expect(ref.code, ref.stderr).toBe(0);

    const store = join(dir, 'killed');
    const first = await train(store, (kill) => {
      const poll = setInterval(() => {
        if (stageOf(store) !== 'fit') return;
        clearInterval(poll);
        setTimeout(kill, 300);
      }, 5);
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('interrupted in stage fit');
    const interrupted = await readJobStatus(new FsObjectStore(store), JOB);
    expect(interrupted.ok && interrupted.value).toMatchObject({ state: 'interrupted', stage: 'fit' });
    expect((await listCheckpointVersions(new FsObjectStore(store))).get('tiny-vf')).toBeUndefined();

    const second = await train(store);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('(job fit-kill-job resumed)');
    expect(await checkpointContent(store)).toEqual(await checkpointContent(reference));
  });
});
