import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { saveCheckpoint } from '../../shared/use-cases/value-function-store.js';
import { type MakeCheckpointOptions, makeCheckpoint } from '../helpers/make-checkpoint.js';

/** A temporary folder store holding the given checkpoints (saved in order, so versions count up). */
export async function tempStore(
  checkpoints: MakeCheckpointOptions[],
): Promise<{ dir: string; store: FsObjectStore; saved: ValueFunctionCheckpoint[]; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-value-api-'));
  const store = new FsObjectStore(dir);
  const saved: ValueFunctionCheckpoint[] = [];
  for (const options of checkpoints) {
    const { version: _, ...checkpoint } = makeCheckpoint(options);
    saved.push(await saveCheckpoint(store, checkpoint));
  }
  return { dir, store, saved, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const SECRET_KEY = 'mo_test_8f3a2c1d9e7b6a5f4c3d2e1f0a9b8c7d';
