import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { JobSpecInput } from '../../shared/schemas/job.js';

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
