import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { readJobStatus, writeJobStatus } from '../../shared/storage/job-documents.js';
import { findSaved, readJobResult } from '../../shared/storage/job-result.js';
import { checkpointKey, jobKeys } from '../../shared/storage/layout.js';
import { listCheckpointVersions, loadCheckpoint, saveCheckpoint } from '../../shared/storage/value-function-store.js';
import { loadFitJobSpec } from '../../shared/use-cases/byom/fit-job-spec.js';
import { runFitJob } from '../../shared/use-cases/byom/fit-observations.js';
import { loadJobSpec, loadJobState, trainValueFunction } from '../../shared/use-cases/jobs/train-value-function.js';

/**
 * A store written by the code of commit 160afaf (before the storage layout had a module of its
 * own): a tiny training job and a tiny fit job, both done. Today's code must read every document
 * of it, write the same bytes for the same documents, and find both jobs done.
 */
const FIXTURE = join(import.meta.dirname, 'fixtures/store-160afaf');
let dir: string;
let store: FsObjectStore;

const bytesOf = (key: string) => readFile(join(FIXTURE, key), 'utf8');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-stored-formats-'));
  await cp(FIXTURE, dir, { recursive: true });
  store = new FsObjectStore(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('stored formats written by earlier releases', () => {
  it('loads both checkpoints, and saving their content again writes the same bytes', async () => {
    expect(await listCheckpointVersions(store)).toEqual(
      new Map([
        ['fixture-fit-vf', [1]],
        ['fixture-train-vf', [1]],
      ]),
    );
    const fresh = new FsObjectStore(await mkdtemp(join(dir, 'fresh-')));
    for (const id of ['fixture-fit-vf', 'fixture-train-vf']) {
      const loaded = await loadCheckpoint(store, id);
      expect(loaded.ok).toBe(true);
      if (!loaded.ok) return;
      const { version: _v, ...content } = loaded.value;
      const saved = await saveCheckpoint(fresh, content);
      expect(saved.version).toBe(1);
      const again = new TextDecoder().decode(await fresh.get(checkpointKey(id, 1)));
      expect(again).toBe(await bytesOf(checkpointKey(id, 1)));
    }
  });

  it('reads the job specs, states and status documents, and writes a status back byte for byte', async () => {
    expect((await loadJobSpec(store, 'fixture-train')).ok).toBe(true);
    expect((await loadFitJobSpec(store, 'fixture-fit')).ok).toBe(true);
    const state = await loadJobState(store, 'fixture-train');
    expect(state.ok && state.value?.stage).toBe('done');
    for (const id of ['fixture-train', 'fixture-fit']) {
      const status = await readJobStatus(store, id);
      expect(status.ok && status.value.state).toBe('done');
      if (!status.ok) return;
      await writeJobStatus(store, status.value);
      expect(await store.get(jobKeys(id).status)).toEqual(new TextEncoder().encode(await bytesOf(jobKeys(id).status)));
    }
  });

  it('reads result.json by job kind and finds the version each result was saved as', async () => {
    const training = await readJobResult(store, 'fixture-train', 'training');
    const fit = await readJobResult(store, 'fixture-fit', 'fit');
    expect(training.ok && training.value?.id).toBe('fixture-train-vf');
    expect(fit.ok && fit.value?.checkpoint.id).toBe('fixture-fit-vf');
    if (!training.ok || !training.value || !fit.ok || !fit.value) return;
    expect((await findSaved(store, training.value))?.version).toBe(1);
    expect((await findSaved(store, fit.value.checkpoint))?.version).toBe(1);
    // The other kind's schema refuses each: the shapes do not mix.
    const wrong = await readJobResult(store, 'fixture-fit', 'training');
    expect(!wrong.ok && wrong.error.code).toBe('JOB_STATE_INVALID');
  });

  it('runs both jobs again as already done, without a second version', async () => {
    const fitSpec = await loadFitJobSpec(store, 'fixture-fit');
    if (!fitSpec.ok) throw fitSpec.error;
    const fit = await runFitJob(fitSpec.value, { store, progress: silentProgress, backend: 'wasm' });
    expect(fit.ok && fit.value).toEqual({ kind: 'already-done', valueFunction: { id: 'fixture-fit-vf', version: 1 } });

    const spec = await loadJobSpec(store, 'fixture-train');
    if (!spec.ok) throw spec.error;
    // A job that is done touches neither its data set nor its metric: they are not given.
    const unused = undefined as never;
    const train = await trainValueFunction(spec.value, {
      store,
      dataset: unused,
      evaluator: unused,
      oracle: unused,
      progress: silentProgress,
      backend: 'wasm',
    });
    expect(train.ok && train.value).toEqual({
      kind: 'already-done',
      valueFunction: { id: 'fixture-train-vf', version: 1 },
    });
    expect((await listCheckpointVersions(store)).get('fixture-train-vf')).toEqual([1]);
    expect((await listCheckpointVersions(store)).get('fixture-fit-vf')).toEqual([1]);
  });
});
