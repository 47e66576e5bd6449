import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { parseLibsvm } from '../../shared/data/libsvm.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import type { ProgressReporter } from '../../shared/ports/progress.port.js';
import type { MetaTrainResult } from '../../shared/use-cases/training/meta-train.js';
import { recipe } from '../../shared/use-cases/training/recipes.js';
import type { RunCache } from '../../shared/use-cases/training/run-cache.js';
import { runTrainingPipeline } from '../../shared/use-cases/training/training-pipeline.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';

let ds: SparseDataset;
let backend: string;
let dir: string;

beforeAll(async () => {
  backend = await useTestBackend();
  const rng = new Rng(8);
  const lines: string[] = [];
  for (let r = 0; r < 700; r++) {
    const active = rng.sampleDistinct(1, 21, 5);
    const score = active.reduce((s, i) => s + (i % 3 === 0 ? 1 : -0.5), 0) + rng.normal() * 0.7;
    lines.push(`${score > 0 ? 1 : -1} ${active.map((i) => `${i}:1`).join(' ')}`);
  }
  const parsed = parseLibsvm(lines.join('\n'), { features: 20, name: 'synthetic' });
  if (!parsed.ok) throw parsed.error;
  ds = parsed.value;
  dir = await mkdtemp(join(tmpdir(), 'metricopt-run-cache-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function evaluator(name: string) {
  const e = builtinEvaluator(name);
  if (!e.ok) throw e.error;
  return e.value;
}

/** The stages a run started, in order. */
function recording(): ProgressReporter & { stages: string[] } {
  const stages: string[] = [];
  return { stages, start: (s) => stages.push(s), tick() {}, end() {} };
}

async function run(metric: string, cache: RunCache | undefined, progress = recording(), logitRank = 0) {
  const cfg = recipe('tuned', 4);
  cfg.model = { ...cfg.model, hidden: [12, 6] };
  if (logitRank > 0) cfg.model.adapter = { kind: 'input-bias', d: 16, outputBias: true, logitRank };
  cfg.pretrain = { ...cfg.pretrain, epochs: 1 };
  cfg.metaTrain = {
    ...cfg.metaTrain,
    trajectories: { ...cfg.metaTrain.trajectories, tasks: 12, steps: 5, batchSize: 16, queries: 3 },
    ensemble: 1,
    train: { ...cfg.metaTrain.train, epochs: 1 },
  };
  const outcome = await runTrainingPipeline(
    { cfg, checkpointId: metric, queryJobId: 'job' },
    {
      dataset: ds,
      evaluator: evaluator(metric),
      oracle: new InProcessMetricOracle(evaluator(metric)),
      store: new FsObjectStore(join(dir, 'store', metric)),
      progress,
      cache,
    },
  );
  if (outcome.kind !== 'done') throw new Error('not done');
  outcome.model.dispose();
  return { trained: outcome.trained as MetaTrainResult, stages: progress.stages };
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('the run cache', () => {
  it('reuses the backbone and the trajectories for another metric on the same data and seeds, same bits', async () => {
    const cache = { store: new FsObjectStore(join(dir, 'cache')), backend };
    const fresh = await run('f1', undefined);
    const first = await run('mcr', cache);
    const second = await run('f1', cache);
    expect(first.stages.some((s) => s.includes('reused'))).toBe(false);
    expect(second.stages.filter((s) => s.includes('reused from the run cache'))).toHaveLength(2);
    expect(bytes(second.trained.trajectories.phis).equals(bytes(fresh.trained.trajectories.phis))).toBe(true);
    expect(second.trained.observations).toEqual(fresh.trained.observations);
  });

  it('reuses a low-rank backbone with its rank (a cached one once came back without it and failed)', async () => {
    const cache = { store: new FsObjectStore(join(dir, 'low-rank')), backend };
    const fresh = await run('f1', undefined, recording(), 4);
    await run('mcr', cache, recording(), 4);
    const second = await run('f1', cache, recording(), 4);
    expect(second.stages.filter((s) => s.includes('reused from the run cache'))).toHaveLength(2);
    expect(second.trained.trajectories.d).toBe(16 + 4 + 1);
    expect(bytes(second.trained.trajectories.phis).equals(bytes(fresh.trained.trajectories.phis))).toBe(true);
    expect(second.trained.observations).toEqual(fresh.trained.observations);
  });

  it('treats a damaged entry as a miss: the work is done again, to the same bits', async () => {
    const cache = { store: new FsObjectStore(join(dir, 'damaged')), backend };
    const first = await run('mcr', cache);
    for (const sub of ['pretrained', 'trajectories']) {
      const folder = join(dir, 'damaged', sub);
      for (const f of await readdir(folder)) await writeFile(join(folder, f), '{"format":"nonsense"');
    }
    const again = await run('mcr', cache);
    expect(again.stages.some((s) => s.includes('reused'))).toBe(false);
    expect(bytes(again.trained.trajectories.phis).equals(bytes(first.trained.trajectories.phis))).toBe(true);
  });

  it('misses when the backend differs (other kernels, other bits)', async () => {
    const store = new FsObjectStore(join(dir, 'backends'));
    await run('mcr', { store, backend });
    const other = await run('mcr', { store, backend: `${backend}-other` });
    expect(other.stages.some((s) => s.includes('reused'))).toBe(false);
  });
});
