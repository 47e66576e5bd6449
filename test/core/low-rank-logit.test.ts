import { expectAdapterRoundTrip, expectLossGradientsMatch, syntheticBinary } from '../helpers/adapter-round-trip.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { splitRows } from '../../shared/data/split.js';
import { FrozenMlpModel } from '../../shared/models/frozen-mlp.js';
import { LOW_RANK_SCALE, lowRankFeatures } from '../../shared/models/low-rank-logit.js';
import { defaultMlpConfig, type FrozenMlp, pretrainMlp } from '../../shared/models/mlp.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';

const RANK = 3;
let ds: SparseDataset;
let lowRank: FrozenMlp;

beforeAll(async () => {
  await useTestBackend();
  ds = syntheticBinary(500, 20, 3);
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
    // An input bias, each u entry, the output bias.
    expectLossGradientsMatch(model, phis, n, rows, batch, [
      [0, 0],
      [1, 5],
      [2, 6],
      [0, 7],
      [1, d - 1],
    ]);
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
    await expectAdapterRoundTrip({ kind: 'input-bias', d: 4, outputBias: true, logitRank: 2 }, 'low-rank-cost', {
      kind: 'low-rank',
      d: 4 + 2 + 1,
    });
  });
});
