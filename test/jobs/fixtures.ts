import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { JobSpecInput } from '../../shared/schemas/job.js';
import { loadCheckpoint } from '../../shared/storage/value-function-store.js';

/** The first `rows` rows of A9A's training file as a LIBSVM file in a new temp folder. */
export async function smallA9a(rows = 400): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mo-jobs-'));
  const text = gunzipSync(readFileSync(join(import.meta.dirname, '../../data/a9a.train.libsvm.gz'))).toString();
  const file = join(dir, 'a9a-small.libsvm');
  await writeFile(file, text.split('\n').slice(0, rows).join('\n'));
  return { dir, file };
}

/** A tiny job (12 tasks, 6 steps, 3 chunks of 4 tasks, query batches of 6): seconds on wasm. */
export function tinyJob(file: string, id = 'tiny-job'): JobSpecInput {
  return {
    format: 'metricopt.job',
    schemaVersion: 1,
    id,
    dataset: { source: file, features: 123 },
    metric: { builtin: 'mcr' },
    recipe: 'tuned',
    seed: 3,
    overrides: {
      pretrain: { epochs: 1 },
      metaTrain: { ensemble: 1, trajectories: { tasks: 12, steps: 6, queries: 3 }, train: { epochs: 2 } },
    },
    output: { valueFunctionId: 'tiny-vf' },
    checkpoint: { chunkTasks: 4, queryBatch: 6 },
  };
}

/**
 * smallA9a(400) and, in its folder, job.json: tinyJob(file, id) with `extra` and checkpoints every
 * 2 tasks and every 3 queries (about 25 state writes).
 */
export async function smallJobFile(
  id: string,
  extra: Partial<JobSpecInput> = {},
): Promise<{ dir: string; file: string; jobFile: string }> {
  const small = await smallA9a(400);
  const jobFile = join(small.dir, 'job.json');
  await writeFile(
    jobFile,
    JSON.stringify({ ...tinyJob(small.file, id), ...extra, checkpoint: { chunkTasks: 2, queryBatch: 3 } }),
  );
  return { ...small, jobFile };
}

/** CLI flags for a training run of seconds (12 tasks, 6 steps, 3 queries per task, one epoch to pretrain, 2 to fit). */
export const tinyFlags = [
  '--tasks',
  '12',
  '--steps',
  '6',
  '--queries-per-task',
  '3',
  '--pretrain-epochs',
  '1',
  '--ensemble',
  '1',
  '--epochs',
  '2',
  '--backend',
  'wasm',
];

/** The highest state seq a job has journaled in a store folder (0 before the first). */
export function stateSeq(store: string, job: string): number {
  try {
    const files = readdirSync(join(store, 'jobs', job, 'state')).filter((f) => /^\d+\.json$/.test(f));
    return Math.max(0, ...files.map((f) => Number(f.slice(0, -5))));
  } catch {
    return 0;
  }
}

/** A checkpoint without its createdAt, to compare two runs bit for bit. */
export async function checkpointContent(store: string, id = 'tiny-vf') {
  const ck = await loadCheckpoint(new FsObjectStore(store), id);
  if (!ck.ok) throw ck.error;
  const { createdAt: _c, ...rest } = ck.value;
  return rest;
}
