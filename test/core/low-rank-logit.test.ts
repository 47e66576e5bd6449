import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildValueApi } from '../../functions/value-api/service.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { parseLibsvm } from '../../shared/data/libsvm.js';
import { splitRows } from '../../shared/data/split.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import { instanceCost } from '../../shared/metrics/context-metrics.js';
import { withDerivedContext } from '../../shared/metrics/context-columns.js';
import { FrozenMlpModel } from '../../shared/models/frozen-mlp.js';
import { LOW_RANK_SCALE, lowRankFeatures } from '../../shared/models/low-rank-logit.js';
import { defaultMlpConfig, type FrozenMlp, pretrainMlp } from '../../shared/models/mlp.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { recipe } from '../../shared/use-cases/training/recipes.js';
import { runTrainingPipeline } from '../../shared/use-cases/training/training-pipeline.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';

function synthetic(rows: number, features: number, seed: number): SparseDataset {
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

const RANK = 3;
let ds: SparseDataset;
let lowRank: FrozenMlp;

beforeAll(async () => {
  await useTestBackend();
  ds = synthetic(500, 20, 3);
  const split = splitRows(ds.rows, 1);
  const base = { ...defaultMlpConfig, hidden: [12, 8, 4] };
  const train = { epochs: 2, batchSize: 64, learningRate: 1e-2, seed: 1 };
  lowRank = await pretrainMlp(
    ds,
    split.train,
    { ...base, adapter: { kind: 'input-bias', d: 5, outputBias: true, logitRank: RANK } },
    train,
    silentProgress,
  );
});

describe('the low-rank logit adapter', () => {
  it('has gradients equal to finite differences of the loss, u entries included', () => {
    const model = new FrozenMlpModel(lowRank, ds);
    expect(model.d).toBe(5 + RANK + 1);
    expect(model.adapterKind).toBe('low-rank');
    const d = model.d;
    const rng = new Rng(5);
    const n = 3;
    const batch = 16;
    const phis = rng.normals(n * d, 0.5);
    const rows = Int32Array.from({ length: n * batch }, () => rng.int(ds.rows));
    const { grad } = model.lossAndGrad(phis, n, rows, batch);
    const h = 1e-2;
    // An input bias, each u entry, the output bias.
    for (const [task, j] of [
      [0, 0],
      [1, 5],
      [2, 6],
      [0, 7],
      [1, d - 1],
    ] as const) {
      const p = Float32Array.from(phis);
      p[task * d + j]! += h;
      const m = Float32Array.from(phis);
      m[task * d + j]! -= h;
      const fd = (model.loss(p, n, rows, batch)[task]! - model.loss(m, n, rows, batch)[task]!) / (2 * h);
      expect(Math.abs(fd - grad[task * d + j]!)).toBeLessThan(2e-3 + 0.02 * Math.abs(fd));
    }
    model.dispose();
  });

  it('shifts each row logit by LOW_RANK_SCALE x u . s_row, and with u = 0 scores like the plain adapter', () => {
    const model = new FrozenMlpModel(lowRank, ds);
    // The same theta and A, without the u entries.
    if (lowRank.adapter.kind !== 'input-bias') throw new Error('input-bias expected');
    const same = new FrozenMlpModel(
      { ...lowRank, adapter: { kind: 'input-bias', d: 6, a: lowRank.adapter.a, outputBias: 1 } },
      ds,
    );
    const rows = Int32Array.from({ length: 30 }, (_, i) => i * 7);
    const input = [0.2, -0.1, 0.3, 0, -0.4];
    const u = [0.5, -1, 0.25];
    const base = same.predict(Float32Array.from([...input, 0.1]), 1, rows);
    const zeroU = model.predict(Float32Array.from([...input, 0, 0, 0, 0.1]), 1, rows);
    const moved = model.predict(Float32Array.from([...input, ...u, 0.1]), 1, rows);
    const s = lowRankFeatures(ds, RANK);
    base.forEach((p, i) => {
      expect(zeroU[i]).toBeCloseTo(p, 6);
      const r = rows[i] as number;
      const shift = u.reduce((a, uk, k) => a + uk * (s[r * RANK + k] as number), 0) * LOW_RANK_SCALE;
      const logit = Math.log(p / (1 - p)) + shift;
      expect(moved[i]).toBeCloseTo(1 / (1 + Math.exp(-logit)), 5);
    });
    // The shift really differs between rows (a per-row decision shift, not a constant).
    const shifts = Array.from(moved, (q, i) => Math.log(q / (1 - q)) - Math.log(base[i]! / (1 - base[i]!)));
    expect(Math.max(...shifts) - Math.min(...shifts)).toBeGreaterThan(0.5);
    model.dispose();
    same.dispose();
  });

  it('standardises each projected column over the rows (mean 0, spread 1/sqrt(rank))', () => {
    const s = lowRankFeatures(ds, RANK);
    for (let k = 0; k < RANK; k++) {
      let m = 0;
      let sq = 0;
      for (let i = 0; i < ds.rows; i++) m += s[i * RANK + k]!;
      m /= ds.rows;
      for (let i = 0; i < ds.rows; i++) sq += (s[i * RANK + k]! - m) ** 2;
      expect(m).toBeCloseTo(0, 5);
      expect(Math.sqrt(sq / ds.rows)).toBeCloseTo(1 / Math.sqrt(RANK), 4);
    }
  });

  it('survives a checkpoint round trip: trained, saved, described and served by the value API', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'metricopt-low-rank-'));
    try {
      const store = new FsObjectStore(dir);
      const data = withDerivedContext(ds, ['amount']);
      const cfg = recipe('tuned', 2);
      cfg.model = {
        ...cfg.model,
        hidden: [8, 4],
        adapter: { kind: 'input-bias', d: 4, outputBias: true, logitRank: 2 },
      };
      cfg.pretrain = { ...cfg.pretrain, epochs: 1 };
      cfg.metaTrain = {
        ...cfg.metaTrain,
        ensemble: 1,
        trajectories: { ...cfg.metaTrain.trajectories, tasks: 8, steps: 6, queries: 3 },
        train: { ...cfg.metaTrain.train, epochs: 3 },
      };
      const out = await runTrainingPipeline(
        { cfg, checkpointId: 'low-rank-cost', queryJobId: 'lr' },
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
      expect(out.checkpoint.adapter).toEqual({ kind: 'low-rank', d: 4 + 2 + 1 });
      const app = buildValueApi({
        store,
        auth: { mode: 'none' },
        maxBodyBytes: 64 * 1024,
        maxRows: 8,
        refreshMs: 0,
      }).app;
      const described = (await (await app.request('/v1/value-functions/low-rank-cost')).json()) as Record<
        string,
        unknown
      >;
      expect(described.adapter).toEqual({ kind: 'low-rank', d: 7 });
      const phi = Array.from(new Rng(9).normals(7));
      const res = await app.request('/v1/value-functions/low-rank-cost/predict', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ phi }),
      });
      const body = (await res.json()) as { normalised: number[] };
      expect(body.normalised[0]).toBeCloseTo(
        new CompiledValueFunction(out.checkpoint).value(Float32Array.from(phi)),
        6,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
