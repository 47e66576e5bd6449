import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { buildValueApi } from '../../functions/value-api/service.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { parseLibsvm } from '../../shared/data/libsvm.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import { withDerivedContext } from '../../shared/metrics/context-columns.js';
import { instanceCost } from '../../shared/metrics/context-metrics.js';
import type { AdaptedModel } from '../../shared/models/adapted-model.js';
import type { MlpConfig } from '../../shared/models/mlp.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { recipe } from '../../shared/use-cases/training/recipes.js';
import { runTrainingPipeline } from '../../shared/use-cases/training/training-pipeline.js';
import { Rng } from '../../shared/util/random.js';

/** A small binary libsvm data set whose label depends on a few of its sparse features. */
export function syntheticBinary(rows: number, features: number, seed: number): SparseDataset {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    const active = rng.sampleDistinct(1, features + 1, 5);
    const score = active.reduce((s, i) => s + (i % 3 === 0 ? 1 : -0.4), 0) + rng.normal() * 0.5;
    lines.push(`${score > 0 ? 1 : -1} ${active.map((i) => `${i}:1`).join(' ')}`);
  }
  const parsed = parseLibsvm(lines.join('\n'), { features, name: 'synthetic' });
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

/**
 * Trains a tiny instance-cost value function with `adapter`, saves it, and checks that the value
 * API describes it as `expected` and predicts what the checkpoint computes locally.
 */
export async function expectAdapterRoundTrip(
  adapter: MlpConfig['adapter'],
  id: string,
  expected: { kind: string; d: number },
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'metricopt-adapter-'));
  try {
    const store = new FsObjectStore(dir);
    const data = withDerivedContext(syntheticBinary(500, 20, 3), ['amount']);
    const cfg = recipe('tuned', 2);
    cfg.model = { ...cfg.model, hidden: [8, 4], adapter };
    cfg.pretrain = { ...cfg.pretrain, epochs: 1 };
    cfg.metaTrain = {
      ...cfg.metaTrain,
      ensemble: 1,
      trajectories: { ...cfg.metaTrain.trajectories, tasks: 8, steps: 6, queries: 3 },
      train: { ...cfg.metaTrain.train, epochs: 3 },
    };
    const out = await runTrainingPipeline(
      { cfg, checkpointId: id, queryJobId: 'rt' },
      {
        dataset: data,
        evaluator: instanceCost,
        oracle: new InProcessMetricOracle(instanceCost),
        store,
        progress: silentProgress,
      },
    );
    if (out.kind !== 'done') throw new Error('expected a finished run');
    out.model.dispose();
    expect(out.checkpoint.adapter).toEqual(expected);
    const app = buildValueApi({ store, auth: { mode: 'none' }, maxBodyBytes: 64 * 1024, maxRows: 8, refreshMs: 0 }).app;
    const described = (await (await app.request(`/v1/value-functions/${id}`)).json()) as Record<string, unknown>;
    expect(described.adapter).toEqual(expected);
    const phi = Array.from(new Rng(9).normals(expected.d));
    const res = await app.request(`/v1/value-functions/${id}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phi }),
    });
    const body = (await res.json()) as { normalised: number[] };
    expect(body.normalised[0]).toBeCloseTo(new CompiledValueFunction(out.checkpoint).value(Float32Array.from(phi)), 6);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Each (task, entry) of `model`'s loss gradient at `phis` against a central finite difference
 * (h = 0.01), within 2e-3 + 2 % of the difference.
 */
export function expectLossGradientsMatch(
  model: Pick<AdaptedModel, 'd' | 'loss' | 'lossAndGrad'>,
  phis: Float32Array,
  n: number,
  rows: Int32Array,
  batch: number,
  entries: readonly (readonly [number, number])[],
): void {
  const d = model.d;
  const { grad } = model.lossAndGrad(phis, n, rows, batch);
  const h = 1e-2;
  for (const [task, j] of entries) {
    const p = Float32Array.from(phis);
    p[task * d + j]! += h;
    const m = Float32Array.from(phis);
    m[task * d + j]! -= h;
    const fd = (model.loss(p, n, rows, batch)[task]! - model.loss(m, n, rows, batch)[task]!) / (2 * h);
    expect(Math.abs(fd - grad[task * d + j]!)).toBeLessThan(2e-3 + 0.02 * Math.abs(fd));
  }
}
