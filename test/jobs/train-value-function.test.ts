import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../shared/adapters/dataset.fs.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { SparseDataset } from '../../shared/data/dataset.js';
import type { Evaluator } from '../../shared/ports/evaluator.port.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { ProgressReporter } from '../../shared/ports/progress.port.js';
import type { JobSpec } from '../../shared/schemas/job.js';
import { parseJobSpec } from '../../shared/use-cases/jobs/job-spec.js';
import {
  loadJobState,
  type TrainJobOutcome,
  trainValueFunction,
} from '../../shared/use-cases/jobs/train-value-function.js';
import { jobKeys } from '../../shared/storage/layout.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { loadCheckpoint } from '../../shared/storage/value-function-store.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';
import { smallA9a, tinyJob } from './fixtures.js';

let dir: string;
let dataset: SparseDataset;
let evaluator: Evaluator;
let spec: JobSpec;
let backend: string;

const quiet: ProgressReporter = { start: () => undefined, tick: () => undefined, end: () => undefined };

beforeAll(async () => {
  backend = await useTestBackend();
  const small = await smallA9a(400);
  dir = small.dir;
  const ds = await loadDataset(small.file, { features: 123 });
  if (!ds.ok) throw ds.error;
  dataset = ds.value;
  const ev = builtinEvaluator('mcr');
  if (!ev.ok) throw ev.error;
  evaluator = ev.value;
  const parsed = parseJobSpec(tinyJob(small.file));
  if (!parsed.ok) throw parsed.error;
  spec = parsed.value;
});

async function runJob(store: ObjectStore, job: JobSpec, stopAfterTicks?: number): Promise<TrainJobOutcome> {
  const stop = new AbortController();
  let ticks = 0;
  const progress: ProgressReporter =
    stopAfterTicks === undefined
      ? quiet
      : {
          ...quiet,
          tick: () => {
            if (++ticks >= stopAfterTicks) stop.abort();
          },
        };
  const r = await trainValueFunction(job, {
    store,
    dataset,
    evaluator,
    oracle: new InProcessMetricOracle(evaluator),
    progress,
    backend,
    signal: stop.signal,
  });
  if (!r.ok) throw r.error;
  return r.value;
}

async function weightsOf(store: ObjectStore) {
  const ck = await loadCheckpoint(store, 'tiny-vf');
  if (!ck.ok) throw ck.error;
  const { createdAt: _c, ...rest } = ck.value;
  return rest;
}

describe('trainValueFunction', () => {
  let reference: Awaited<ReturnType<typeof weightsOf>>;

  beforeAll(async () => {
    const store = new FsObjectStore(join(dir, 'reference'));
    const out = await runJob(store, spec);
    expect(out.kind).toBe('done');
    reference = await weightsOf(store);
  });

  it('writes the checkpoint, a done state and a done status document', async () => {
    const store = new FsObjectStore(join(dir, 'reference'));
    const state = await loadJobState(store, spec.id);
    expect(state.ok && state.value?.stage).toBe('done');
    const status = await readJobStatus(store, spec.id);
    if (!status.ok) throw status.error;
    expect(status.value).toMatchObject({
      state: 'done',
      stage: 'done',
      tasks: { done: 12, total: 12 },
      evaluations: { total: 36, sent: 36, returned: 36, failed: 0 },
      backend,
      lastError: null,
      valueFunction: { id: 'tiny-vf', version: 1 },
    });
    expect(status.value.heldOut?.observations).toBeGreaterThan(0);
    expect(reference.version).toBe(1);
  });

  it('says a finished job is done and changes nothing in the store', async () => {
    const store = new FsObjectStore(join(dir, 'reference'));
    const before = await snapshot(store);
    const out = await runJob(store, spec);
    expect(out).toEqual({ kind: 'already-done', valueFunction: { id: 'tiny-vf', version: 1 } });
    expect(await snapshot(store)).toEqual(before);
  });

  it('repairs a status document left behind by a trainer killed after its last state write', async () => {
    const store = new FsObjectStore(join(dir, 'reference'));
    const done = await readJobStatus(store, spec.id);
    if (!done.ok) throw done.error;
    await store.put(
      jobKeys(spec.id).status,
      JSON.stringify({ ...done.value, state: 'running', stage: 'fit', heldOut: null }),
    );
    const out = await runJob(store, spec);
    expect(out.kind).toBe('already-done');
    const repaired = await readJobStatus(store, spec.id);
    expect(repaired.ok && repaired.value).toEqual({ ...done.value, updatedAt: expect.any(String) });
    expect((await store.list('value-functions/')).length).toBe(1);
  });

  it('stopped at random points and resumed, ends with the same bits and counts every task once', async () => {
    const rng = new Rng(42);
    // 3 chunks x 6 steps + 6 query batches: 24 progress ticks in all.
    for (let trial = 0; trial < 3; trial++) {
      const store = new FsObjectStore(join(dir, `resume-${trial}`));
      let out: TrainJobOutcome | undefined;
      let stops = 0;
      for (let attempt = 0; attempt < 12; attempt++) {
        out = await runJob(store, spec, 1 + rng.int(12));
        if (out.kind !== 'interrupted') break;
        stops++;
        const status = await readJobStatus(store, spec.id);
        expect(status.ok && status.value.state).toBe('interrupted');
      }
      expect(stops).toBeGreaterThan(0);
      expect(out?.kind).toBe('done');
      expect(await weightsOf(store)).toEqual(reference);
      const status = await readJobStatus(store, spec.id);
      expect(status.ok && status.value.evaluations).toEqual({ total: 36, sent: 36, returned: 36, failed: 0 });
      const state = await loadJobState(store, spec.id);
      const perTask = state.ok ? state.value?.observations.perTask : undefined;
      expect(perTask?.map((o) => o.length)).toEqual(Array(12).fill(3));
    }
  });

  it('refuses a different spec under a stored id with JOB_SPEC_MISMATCH, writing nothing', async () => {
    const store = new FsObjectStore(join(dir, 'reference'));
    const before = await snapshot(store);
    const other = parseJobSpec({ ...tinyJob(spec.dataset.source), seed: 4 });
    if (!other.ok) throw other.error;
    const r = await trainValueFunction(other.value, {
      store,
      dataset,
      evaluator,
      oracle: new InProcessMetricOracle(evaluator),
      progress: quiet,
      backend,
    });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe('JOB_SPEC_MISMATCH');
    expect(await snapshot(store)).toEqual(before);
  });

  it('stops with JOB_STATE_CONFLICT when another trainer wrote the next state first', async () => {
    const inner = new FsObjectStore(join(dir, 'conflict'));
    let planted = false;
    const store: ObjectStore = Object.assign(Object.create(inner) as ObjectStore, {
      location: inner.location,
      putIfAbsent: async (key: string, body: Uint8Array | string) => {
        if (!planted && key === jobKeys(spec.id).state(2)) {
          planted = true;
          await inner.putIfAbsent(key, body); // the other trainer
        }
        return inner.putIfAbsent(key, body);
      },
    });
    await expect(runJob(store, spec)).rejects.toMatchObject({ code: 'JOB_STATE_CONFLICT' });
    expect((await inner.list('value-functions/')).length).toBe(0);
  });

  it('records a failure in the status document with its code', async () => {
    const store = new FsObjectStore(join(dir, 'failing'));
    const broken: Evaluator = { ...evaluator, evaluate: () => Number.NaN };
    await expect(
      trainValueFunction(spec, {
        store,
        dataset,
        evaluator: broken,
        oracle: new InProcessMetricOracle(broken),
        progress: quiet,
        backend,
      }),
    ).rejects.toMatchObject({ code: 'EVALUATOR_INVALID_VALUE' });
    const status = await readJobStatus(store, spec.id);
    if (!status.ok) throw status.error;
    expect(status.value.state).toBe('failed');
    expect(status.value.lastError?.code).toBe('EVALUATOR_INVALID_VALUE');
    expect((await store.list('value-functions/')).length).toBe(0);
  });
});

async function snapshot(store: FsObjectStore): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const k of await store.list('')) out[k] = Buffer.from((await store.get(k)) as Uint8Array).toString('base64');
  return out;
}
