import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { chunkResultSchema } from '../../shared/schemas/job.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';
import { cliPath, ensureBuiltCli } from './built-cli.js';
import { checkpointContent, smallJobFile, tinyJob } from './fixtures.js';

/** A fan-out job (6 chunks of 2 tasks) on the durable local queue, by one and by two trainer workers. */
let dir: string;
let jobFile: string;
let noisyFile: string;
const JOB = 'queue-job';

beforeAll(async () => {
  ensureBuiltCli();
  const small = await smallJobFile(JOB, { fanOut: true });
  ({ dir, jobFile } = small);
  // The label-noise cell as a job: a9a column 71 (female) is group 1.
  const tiny = tinyJob(small.file, 'noisy-job');
  noisyFile = join(dir, 'noisy.json');
  await writeFile(
    noisyFile,
    JSON.stringify({
      ...tiny,
      dataset: { ...tiny.dataset, groupFeature: 71 },
      overrides: { ...tiny.overrides, labelNoise: 0.5 },
      fanOut: true,
      checkpoint: { chunkTasks: 2, queryBatch: 3 },
    }),
  );
});

const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, [cliPath, ...args, '--backend', 'wasm'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
};

async function chunkRecords(store: string) {
  const fs = new FsObjectStore(store);
  const keys = (await fs.list(`jobs/${JOB}/tasks/`)).filter((k) => k.endsWith('.json'));
  return Promise.all(
    keys.map(async (k) => chunkResultSchema.parse(JSON.parse(new TextDecoder().decode(await fs.get(k))))),
  );
}

describe('metricopt train --queue (trainer workers on the jobs queue)', () => {
  it('does every chunk exactly once with two workers and ends with the one-worker checkpoint', async () => {
    const runs: Record<string, string> = {};
    for (const workers of [1, 2]) {
      const store = join(dir, `store-${workers}`);
      const queue = join(dir, `queue-${workers}`);
      const out = cli('train', '--job', jobFile, '--store', store, '--queue', queue, '--workers', String(workers));
      expect(out).toContain(`checkpoint tiny-vf v1 written`);
      expect(out).toContain(`by ${workers} worker(s)`);
      runs[workers] = store;

      const records = await chunkRecords(store);
      expect(records.map((r) => r.chunk).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(records.reduce((a, r) => a + r.tasks.end - r.tasks.start, 0)).toBe(12);
      expect(records.reduce((a, r) => a + r.sent, 0)).toBe(36);
      const status = await readJobStatus(new FsObjectStore(store), JOB);
      expect(status.ok && status.value).toMatchObject({
        state: 'done',
        tasks: { done: 12, total: 12 },
        evaluations: { total: 36, sent: 36, returned: 36, failed: 0 },
      });
      const counts = await new LocalQueue(queue).counts();
      expect(counts).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
    }
    expect(await checkpointContent(runs[2] as string)).toEqual(await checkpointContent(runs[1] as string));

    // A duplicated delivery (a chunk and the fit sent again) changes nothing.
    const store = runs[2] as string;
    const queue = join(dir, 'queue-2');
    await new LocalQueue(queue).send([
      JSON.stringify({ kind: 'chunk', jobId: JOB, chunk: 3 }),
      JSON.stringify({ kind: 'fit', jobId: JOB }),
      JSON.stringify({ kind: 'job', jobId: JOB }),
    ]);
    const before = readFileSync(join(store, 'jobs', JOB, 'tasks', '000003.json'), 'utf8');
    const out = cli('train', '--worker', '--store', store, '--queue', queue, '--idle-exit', '2');
    expect(out).toContain('"event":"worker-exit"');
    expect(out).toContain('"handled":3');
    expect(out).toContain('"chunks":0');
    expect(out).toContain('"fits":0');
    expect(readFileSync(join(store, 'jobs', JOB, 'tasks', '000003.json'), 'utf8')).toBe(before);
    expect((await listCheckpointVersions(new FsObjectStore(store))).get('tiny-vf')).toEqual([1]);
  });

  it('computes the same trajectories when the fan-out job runs in one process without a queue', async () => {
    const store = join(dir, 'store-sequential');
    cli('train', '--job', jobFile, '--store', store);
    for (const c of [0, 5]) {
      const name = `${String(c).padStart(6, '0')}.f32`;
      const sequential = readFileSync(join(store, 'jobs', JOB, 'trajectories', name));
      const fanned = readFileSync(join(dir, 'store-1', 'jobs', JOB, 'tasks', name));
      expect(Buffer.compare(sequential, fanned)).toBe(0);
    }
  });

  it("trains a job's label noise on the queue as in one process", async () => {
    const queued = join(dir, 'store-noisy-queue');
    cli('train', '--job', noisyFile, '--store', queued, '--queue', join(dir, 'queue-noisy'), '--workers', '1');
    const sequential = join(dir, 'store-noisy');
    cli('train', '--job', noisyFile, '--store', sequential);

    // That the noise changes the model: test/jobs/train-command.test.ts (demo and train, with and without).
    expect(await checkpointContent(queued)).toEqual(await checkpointContent(sequential));
  }, 600_000);
});
