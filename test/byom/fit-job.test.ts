import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { fitJobSpecSchema } from '../../shared/schemas/job.js';
import { createFitJob, observationsPrefix } from '../../shared/use-cases/byom/fit-job-spec.js';
import { jobKeys } from '../../shared/storage/layout.js';
import { runFitJob } from '../../shared/use-cases/byom/fit-observations.js';
import { addObservationBatch } from '../../shared/use-cases/byom/observation-store.js';
import { parseObservationText } from '../../shared/use-cases/byom/observation-batches.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';
import { useTestBackend } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import { makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

const world = makeWorld(3, 5);
const text = toJsonLines(recordTrajectories(world, { trajectories: 10, steps: 8, K: 3, seed: 6 }));
let dir: string;
let backend: string;

const spec = (id: string) =>
  fitJobSpecSchema.parse({
    format: 'metricopt.fit-job',
    schemaVersion: 1,
    id,
    metric: { name: 'bowl', direction: 'maximize' },
    overrides: { metaTrain: { ensemble: 1, train: { epochs: 3 } } },
    output: { valueFunctionId: `${id}-vf` },
  });

async function prepared(id: string): Promise<FsObjectStore> {
  const store = new FsObjectStore(join(dir, id));
  const s = spec(id);
  expect((await createFitJob(store, s)).ok).toBe(true);
  const parsed = parseObservationText(text, 'obs');
  if (!parsed.ok) throw parsed.error;
  expect((await addObservationBatch(store, observationsPrefix(s), parsed.value, 'obs')).ok).toBe(true);
  return store;
}

beforeAll(async () => {
  backend = await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-job-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('runFitJob: the entry point a worker calls for a fit job', () => {
  it('runs to done; run again it is already done and writes no second version', async () => {
    const store = await prepared('twice');
    const first = await runFitJob(spec('twice'), { store, progress: silentProgress, backend });
    expect(first.ok && first.value.kind).toBe('done');
    if (!first.ok || first.value.kind !== 'done') return;
    expect(first.value.checkpoint).toMatchObject({
      id: 'twice-vf',
      version: 1,
      d: 3,
      metric: { name: 'bowl', direction: 'maximize' },
      adapter: { kind: 'external', d: 3 },
      dataset: 'observations:twice',
    });
    const second = await runFitJob(spec('twice'), { store, progress: silentProgress, backend });
    expect(second).toEqual({
      ok: true,
      value: { kind: 'already-done', valueFunction: { id: 'twice-vf', version: 1 } },
    });
    expect((await listCheckpointVersions(store)).get('twice-vf')).toEqual([1]);
  });

  it('killed after the fit was stashed but before its version was recorded: the resume saves it once', async () => {
    const store = await prepared('killed');
    await runFitJob(spec('killed'), { store, progress: silentProgress, backend });
    // Simulate the kill: the status never reached done.
    const status = JSON.parse(new TextDecoder().decode(await store.get(jobKeys('killed').status)));
    await store.put(jobKeys('killed').status, JSON.stringify({ ...status, state: 'running', stage: 'fit' }));
    const again = await runFitJob(spec('killed'), { store, progress: silentProgress, backend });
    expect(again.ok && again.value.kind).toBe('already-done');
    expect(JSON.parse(new TextDecoder().decode(await store.get(jobKeys('killed').status)))).toMatchObject({
      state: 'done',
      valueFunction: { id: 'killed-vf', version: 1 },
    });
    expect((await listCheckpointVersions(store)).get('killed-vf')).toEqual([1]);
  });

  it('a stashed fit whose version was never saved is saved with the stashed content (no refit)', async () => {
    const store = await prepared('stashed');
    await runFitJob(spec('stashed'), { store, progress: silentProgress, backend });
    const saved = await store.get('value-functions/stashed-vf/v000001.json');
    await store.delete('value-functions/stashed-vf/v000001.json');
    const again = await runFitJob(spec('stashed'), { store, progress: silentProgress, backend });
    expect(again.ok && again.value.kind).toBe('done');
    expect(new TextDecoder().decode(await store.get('value-functions/stashed-vf/v000001.json'))).toBe(
      new TextDecoder().decode(saved),
    );
  });

  it('another spec under the id is JOB_SPEC_MISMATCH; aborted before the fit it is interrupted', async () => {
    const store = await prepared('other');
    const mismatch = await runFitJob({ ...spec('other'), seed: 9 }, { store, progress: silentProgress, backend });
    expect(!mismatch.ok && mismatch.error.code).toBe('JOB_SPEC_MISMATCH');
    const stop = new AbortController();
    stop.abort();
    const stopped = await runFitJob(spec('other'), { store, progress: silentProgress, backend, signal: stop.signal });
    expect(stopped.ok && stopped.value.kind).toBe('interrupted');
    expect((await listCheckpointVersions(store)).get('other-vf')).toBeUndefined();
  });

  it('metricopt jobs status reads a fit job; metricopt fit --job resumes it; a new fit of the id writes v2', async () => {
    const store = join(dir, 'cli');
    const file = join(dir, 'cli.jsonl');
    await writeFile(file, text);
    const base = ['--id', 'cli-vf', '--direction', 'minimize', '--store', store, '--ensemble', '1', '--epochs', '3'];
    const fit = await runCli(['fit', '--observations', file, '--job', 'cli-1', ...base]);
    expect(fit.code, fit.stderr).toBe(0);
    expect(fit.stdout).toMatch(
      /observations added .*\ncheckpoint cli-vf v1 written to .* \(job cli-1\)\nheld-out MAE /,
    );
    const status = await runCli(['jobs', 'status', 'cli-1', '--store', store]);
    expect(status.stdout).toMatch(/^job cli-1: done \(stage done, backend \w+\)\n {2}tasks {8}10\/10/);
    expect(status.stdout).toMatch(/checkpoint {3}cli-vf v1/);
    const resumed = await runCli(['fit', '--job', 'cli-1', '--store', store]);
    expect(resumed.stdout).toMatch(/job cli-1 is already done: checkpoint cli-vf v1 .*; nothing changed/);
    const next = await runCli(['fit', '--observations', file, '--job', 'cli-2', ...base]);
    expect(next.stdout).toMatch(/checkpoint cli-vf v2 written/);
    const missing = await runCli(['fit', '--store', store]);
    expect(missing.stderr.trim()).toBe(
      'metricopt: error [USAGE]: fit: --observations FILE is required (or --job ID to resume)',
    );
  });
});
