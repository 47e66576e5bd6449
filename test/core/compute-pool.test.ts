// The compute pool runs the worker entry compiled to dist/: `npm run build` before this file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WorkerThreadComputePool } from '../../shared/adapters/compute-pool.worker-thread.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { parseLibsvm } from '../../shared/data/libsvm.js';
import { BalancedSampler } from '../../shared/data/sampler.js';
import { TrajectoryGenerator } from '../../shared/method/trajectory.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import { buildAdaptedModel } from '../../shared/models/model-spec.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import type { MetaTrainResult } from '../../shared/use-cases/training/meta-train.js';
import { recipe } from '../../shared/use-cases/training/recipes.js';
import { runTrainingPipeline } from '../../shared/use-cases/training/training-pipeline.js';
import { pretrainModelSpec } from '../../shared/use-cases/training/pretrain.js';
import { Rng } from '../../shared/util/random.js';
import { unwrap } from '../../shared/util/result.js';
import { useTestBackend } from '../helpers/backend.js';

// Heavy in-process work (pipelines on worker threads): longer than the unit tier's 20-s default under load.
vi.setConfig({ testTimeout: 60_000 });

function synthetic(rows: number, features: number, seed: number): SparseDataset {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    const active = rng.sampleDistinct(1, features + 1, 6);
    const score = active.reduce((s, i) => s + (i % 3 === 0 ? 1 : -0.5), 0) + rng.normal() * 0.7;
    lines.push(`${score > 0 ? 1 : -1} ${active.map((i) => `${i}:1`).join(' ')}`);
  }
  const parsed = parseLibsvm(lines.join('\n'), { features, name: 'synthetic' });
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

let ds: SparseDataset;
let backend: string;
let dir: string;
const pools: WorkerThreadComputePool[] = [];

beforeAll(async () => {
  backend = await useTestBackend();
  ds = synthetic(900, 24, 5);
  dir = await mkdtemp(join(tmpdir(), 'metricopt-pool-'));
});

afterAll(async () => {
  for (const p of pools) await p.close();
  await rm(dir, { recursive: true, force: true });
});

function pool(workers: number): WorkerThreadComputePool {
  const p = new WorkerThreadComputePool(workers, ds, backend);
  pools.push(p);
  return p;
}

/** A small tuned run: 3 trajectory chunks, every stage; `threads` 1 = no pool. */
function smallConfig(adapter: 'input-bias' | 'film') {
  const cfg = recipe('tuned', 3);
  cfg.model = {
    ...cfg.model,
    hidden: [16, 8, 4],
    adapter: adapter === 'film' ? { kind: 'film', layer: 1 } : { kind: 'input-bias', d: 6, outputBias: true },
  };
  cfg.pretrain = { ...cfg.pretrain, epochs: 1 };
  cfg.metaTrain = {
    ...cfg.metaTrain,
    trajectories: { ...cfg.metaTrain.trajectories, tasks: 24, steps: 6, batchSize: 16, queries: 3 },
    ensemble: 1,
    train: { ...cfg.metaTrain.train, epochs: 2 },
  };
  return cfg;
}

describe('WorkerThreadComputePool', () => {
  it.each(['input-bias', 'film'] as const)(
    'gives the trajectories of the main thread bit for bit with %s adapters, chunks split over 2 or 3 threads',
    async (adapter) => {
      const cfg = smallConfig(adapter);
      const train = Int32Array.from({ length: 600 }, (_, i) => i);
      const spec = unwrap(await pretrainModelSpec(ds, train, cfg, silentProgress));
      const model = buildAdaptedModel(spec, ds);
      const sampler = new BalancedSampler(train, ds.labels, ds.classes);
      const tcfg = cfg.metaTrain.trajectories;
      const here = new TrajectoryGenerator(model, sampler, tcfg, 7);
      while (!here.finished) here.runChunk();
      for (const threads of [2, 3]) {
        const p = pool(threads - 1);
        await p.load(spec);
        const there = new TrajectoryGenerator(model, sampler, tcfg, 7);
        while (!there.finished) await there.runChunkOn(p);
        expect(bytes(there.trajectories.phis).equals(bytes(here.trajectories.phis))).toBe(true);
        expect(bytes(there.trajectories.losses).equals(bytes(here.trajectories.losses))).toBe(true);
        expect(there.rngState()).toEqual(here.rngState());
      }
      model.dispose();
    },
  );

  it('gives the observations and the checkpoint of one thread bit for bit with 2 threads, same seed', async () => {
    const cfg = smallConfig('input-bias');
    const run = async (threads: number, id: string) => {
      const outcome = await runTrainingPipeline(
        { cfg, checkpointId: id, queryJobId: 'job' },
        {
          dataset: ds,
          evaluator: f1(),
          oracle: new InProcessMetricOracle(f1()),
          store: new FsObjectStore(join(dir, id)),
          progress: silentProgress,
          pool: threads > 1 ? pool(threads - 1) : undefined,
        },
      );
      if (outcome.kind !== 'done' || !outcome.trained) throw new Error('not done');
      outcome.model.dispose();
      return outcome;
    };
    const one = await run(1, 'one');
    const two = await run(2, 'two');
    const t1 = one.trained as MetaTrainResult;
    const t2 = two.trained as MetaTrainResult;
    expect(bytes(t2.trajectories.phis).equals(bytes(t1.trajectories.phis))).toBe(true);
    expect(t2.observations).toEqual(t1.observations);
    expect(t1.observations.flat().length).toBe(24 * 3);
    const content = (c: typeof one.checkpoint) => JSON.stringify({ ...c, id: '', createdAt: '' });
    expect(content(two.checkpoint)).toBe(content(one.checkpoint));
  });

  it('trains ensemble members over 2 and 3 threads to the checkpoint of one thread, bit for bit', async () => {
    const cfg = smallConfig('input-bias');
    cfg.metaTrain = { ...cfg.metaTrain, ensemble: 3 };
    const checkpointOf = async (threads: number) => {
      const id = `ensemble-${threads}`;
      const outcome = await runTrainingPipeline(
        { cfg, checkpointId: id, queryJobId: 'job' },
        {
          dataset: ds,
          evaluator: f1(),
          oracle: new InProcessMetricOracle(f1()),
          store: new FsObjectStore(join(dir, id)),
          progress: silentProgress,
          pool: threads > 1 ? pool(threads - 1) : undefined,
        },
      );
      if (outcome.kind !== 'done') throw new Error('not done');
      outcome.model.dispose();
      return JSON.stringify({ ...outcome.checkpoint, id: '', createdAt: '' });
    };
    const one = await checkpointOf(1);
    const members = JSON.parse(one).members;
    expect(members).toHaveLength(3);
    // Different seeds, different members: the comparison below sees each member's place.
    expect(members[1]).not.toEqual(members[0]);
    expect(members[2]).not.toEqual(members[1]);
    expect(await checkpointOf(2)).toBe(one);
    expect(await checkpointOf(3)).toBe(one);
  });

  it('rejects a job with the worker message when no model was loaded, then predicts like the main thread', async () => {
    const p = pool(1);
    await expect(p.predict(new Float32Array(6), 1, Int32Array.from([1, 2]))).rejects.toThrow(/no model loaded/);
    const spec = unwrap(
      await pretrainModelSpec(
        ds,
        Int32Array.from({ length: 300 }, (_, i) => i),
        smallConfig('input-bias'),
        silentProgress,
      ),
    );
    await p.load(spec);
    const model = buildAdaptedModel(spec, ds);
    const phi = Float32Array.from([0.5, -1, 0.2, 0, 1, 0.3, -0.2]);
    const rows = Int32Array.from({ length: 40 }, (_, i) => 2 * i);
    expect(bytes(await p.predict(phi, 1, rows)).equals(bytes(model.predict(phi, 1, rows)))).toBe(true);
    // The row set travels once; later calls name it, and a second set gets its own id.
    const phi2 = phi.map((v) => -v);
    expect(bytes(await p.predict(phi2, 1, rows)).equals(bytes(model.predict(phi2, 1, rows)))).toBe(true);
    const other = rows.map((r) => r + 1);
    expect(bytes(await p.predict(phi, 1, other)).equals(bytes(model.predict(phi, 1, other)))).toBe(true);
    // After release the next job starts a new worker, which loads the model and the row set again.
    await p.release();
    expect(bytes(await p.predict(phi2, 1, rows)).equals(bytes(model.predict(phi2, 1, rows)))).toBe(true);
    model.dispose();
  });
});

function f1() {
  const e = builtinEvaluator('f1');
  if (!e.ok) throw e.error;
  return e.value;
}
