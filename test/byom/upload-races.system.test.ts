import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { S3ObjectStore } from '../../shared/adapters/object-store.s3.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { fitJobSummary, startFitJob, uploadObservations } from '../../shared/use-cases/byom/fit-job-api.js';
import type { StoredObservation } from '../../shared/use-cases/byom/observation-batches.js';
import { motoAvailable, startMoto } from '../helpers/moto.js';
import { createMinimalFitJob } from '../helpers/fit-job.js';

/**
 * Issue 23, item 2: several training workers uploading to one job at once. Every batch is
 * committed with a conditional create, so concurrent batches either all land, or a conflicting
 * one is refused with a code; never a silent drop, never a job its own routes cannot read.
 */
const UPLOADERS = 16;

const obs = (trajectory: string, step: number, d: number, value: number): StoredObservation => ({
  trajectory,
  step,
  phi: Float32Array.from({ length: d }, (_, j) => value + j),
  metric: value,
});

let n = 0;
async function newJob(store: ObjectStore): Promise<string> {
  const id = `race-${++n}`;
  await createMinimalFitJob(store, id, 'bowl');
  return id;
}

const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error?.code);

function describeUploadRaces(name: string, makeStore: () => Promise<ObjectStore>) {
  // Many requests at once on a shared machine: a generous per-test timeout (no timing is asserted).
  describe(`concurrent uploads to one fit job (${name})`, { timeout: 60_000 }, () => {
    let store: ObjectStore;
    beforeAll(async () => {
      store = await makeStore();
    }, 60_000);

    it('keeps every batch when concurrent uploaders send disjoint observations', async () => {
      const id = await newJob(store);
      const results = await Promise.all(
        Array.from({ length: UPLOADERS }, (_, u) =>
          uploadObservations(store, id, [obs(`t${u}`, 0, 4, u), obs(`t${u}`, 1, 4, u + 0.5)], `worker ${u}`),
        ),
      );
      expect(results.map(codeOf)).toEqual(results.map(() => 'ok'));
      const summary = await fitJobSummary(store, id);
      expect(summary.ok && summary.value.uploads).toMatchObject({
        observations: 2 * UPLOADERS,
        trajectories: UPLOADERS,
        d: 4,
      });
    });

    it('accepts one of several batches with the same (trajectory, step) and other values; the others get OBSERVATIONS_CONFLICT', async () => {
      const id = await newJob(store);
      const results = await Promise.all(
        Array.from({ length: UPLOADERS }, (_, u) =>
          uploadObservations(store, id, [obs('shared', 3, 4, u)], `worker ${u}`),
        ),
      );
      const codes = results.map(codeOf);
      expect(codes.filter((c) => c === 'ok')).toHaveLength(1);
      expect(codes.filter((c) => c === 'OBSERVATIONS_CONFLICT')).toHaveLength(UPLOADERS - 1);
      const summary = await fitJobSummary(store, id);
      expect(summary.ok && summary.value.uploads.observations).toBe(1);
    });

    it('counts a concurrent retry of the same batch as duplicates, not as a conflict', async () => {
      const id = await newJob(store);
      const batch = [obs('same', 0, 4, 1), obs('same', 1, 4, 2)];
      const results = await Promise.all(Array.from({ length: 8 }, () => uploadObservations(store, id, batch, 'retry')));
      expect(results.map(codeOf)).toEqual(results.map(() => 'ok'));
      const accepted = results.map((r) => (r.ok ? r.value.accepted : -1));
      expect(accepted.reduce((a, b) => a + b, 0)).toBe(2);
      const summary = await fitJobSummary(store, id);
      expect(summary.ok && summary.value.uploads.observations).toBe(2);
    });

    it('refuses a batch whose d differs from a concurrent one before storing it; the job stays readable', async () => {
      const id = await newJob(store);
      const results = await Promise.all(
        Array.from({ length: UPLOADERS }, (_, u) =>
          uploadObservations(store, id, [obs(`t${u}`, 0, u % 2 === 0 ? 4 : 5, u)], `worker ${u}`),
        ),
      );
      const codes = results.map(codeOf);
      expect(codes.filter((c) => c !== 'ok' && c !== 'OBSERVATIONS_INVALID')).toEqual([]);
      const okD = results.flatMap((r) => (r.ok ? [r.value.d] : []));
      expect(new Set(okD).size).toBe(1);
      const summary = await fitJobSummary(store, id);
      expect(summary.ok).toBe(true);
      if (!summary.ok) return;
      expect(summary.value.uploads.observations).toBe(okD.length);
      // Later uploads and start still work (start answers the set's own problem, not a stored-file error).
      const d = okD[0] as number;
      const more = await uploadObservations(store, id, [obs('late', 0, d, 1)], 'late');
      expect(codeOf(more)).toBe('ok');
      const refused = results.find((r) => !r.ok);
      expect(refused && !refused.ok && refused.error.message).not.toMatch(/jobs\/|\.jsonl/);
      const start = await startFitJob(store, id, { via: 'in-process', launch: async () => undefined });
      expect(codeOf(start)).toBe('OBSERVATIONS_INSUFFICIENT');
    });
  });
}

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describeUploadRaces('filesystem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mo-races-'));
  dirs.push(dir);
  return new FsObjectStore(dir);
});

let stopMoto: (() => void) | undefined;
afterAll(() => stopMoto?.());
describe.skipIf(!motoAvailable)('on moto', () => {
  describeUploadRaces('S3 (moto)', async () => {
    const moto = await startMoto();
    stopMoto = moto.stop;
    const client = new S3Client({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await client.send(new CreateBucketCommand({ Bucket: 'metricopt-races' }));
    return new S3ObjectStore({ bucket: 'metricopt-races', prefix: 'p', client });
  });
});
