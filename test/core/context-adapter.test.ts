import { expectAdapterRoundTrip, expectLossGradientsMatch, syntheticBinary } from '../helpers/adapter-round-trip.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SparseDataset } from '../../shared/data/dataset.js';
import { splitRows } from '../../shared/data/split.js';
import { withDerivedContext } from '../../shared/metrics/context-columns.js';
import { FrozenMlpModel } from '../../shared/models/frozen-mlp.js';
import { contextLogitFeatures } from '../../shared/models/low-rank-logit.js';
import { defaultMlpConfig, type FrozenMlp, pretrainMlp } from '../../shared/models/mlp.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { recipe } from '../../shared/use-cases/training/recipes.js';
import { pretrainKey } from '../../shared/use-cases/training/run-cache.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';

const base = { ...defaultMlpConfig, hidden: [12, 8, 4] };
const contextAdapter = { kind: 'input-bias', d: 5, outputBias: true, logitFeatures: 'context' } as const;
const train = { epochs: 2, batchSize: 64, learningRate: 1e-2, seed: 1 };
let ds: SparseDataset;
let frozen: FrozenMlp;

beforeAll(async () => {
  await useTestBackend();
  // Two context columns: a positive amount (read on a log scale) and a 0/1 group (read as is).
  ds = withDerivedContext(syntheticBinary(500, 20, 3), ['amount', 'group'], 4);
  frozen = await pretrainMlp(
    ds,
    splitRows(ds.rows, 1).train,
    { ...base, adapter: contextAdapter },
    train,
    silentProgress,
  );
});

describe('the context adapter', () => {
  it('has one logit weight per context column, sorted by name, and reports its kind', () => {
    const model = new FrozenMlpModel(frozen, ds);
    expect(frozen.adapter).toMatchObject({ logitRank: 2, logitColumns: ['amount', 'group'] });
    expect(model.d).toBe(5 + 2 + 1);
    expect(model.adapterKind).toBe('context');
    model.dispose();
  });

  it('has gradients equal to finite differences of the loss, context weights included', () => {
    const model = new FrozenMlpModel(frozen, ds);
    const d = model.d;
    const rng = new Rng(5);
    const n = 3;
    const batch = 16;
    const phis = rng.normals(n * d, 0.5);
    const rows = Int32Array.from({ length: n * batch }, () => rng.int(ds.rows));
    expectLossGradientsMatch(model, phis, n, rows, batch, [
      [0, 0],
      [1, 5],
      [2, 6],
      [0, 5],
      [1, d - 1],
    ]);
    model.dispose();
  });

  it('shifts each row logit by u . s, s = standardised log amount and group', () => {
    const model = new FrozenMlpModel(frozen, ds);
    const rows = Int32Array.from({ length: 40 }, (_, i) => i * 11);
    const input = [0.2, -0.1, 0.3, 0, -0.4];
    const u = [0.7, -1.2];
    const plain = model.predict(Float32Array.from([...input, 0, 0, 0.1]), 1, rows);
    const moved = model.predict(Float32Array.from([...input, ...u, 0.1]), 1, rows);
    const amount = ds.context?.amount as Float64Array;
    const group = ds.context?.group as Float64Array;
    const std = (x: Float64Array) => {
      const m = x.reduce((a, v) => a + v, 0) / x.length;
      const sd = Math.sqrt(x.reduce((a, v) => a + (v - m) ** 2, 0) / x.length);
      return (v: number) => (v - m) / sd;
    };
    const logAmount = Float64Array.from(amount, Math.log);
    const [sa, sg] = [std(logAmount), std(group)];
    plain.forEach((p, i) => {
      const r = rows[i] as number;
      const shift = u[0]! * sa(logAmount[r]!) + u[1]! * sg(group[r]!);
      expect(Math.log(moved[i]! / (1 - moved[i]!)) - Math.log(p / (1 - p))).toBeCloseTo(shift, 3);
    });
    model.dispose();
  });

  it('refuses a data set without context, and one missing a column it was built on, with a coded error', async () => {
    const bare = syntheticBinary(200, 20, 4);
    await expect(
      pretrainMlp(bare, splitRows(bare.rows, 1).train, { ...base, adapter: contextAdapter }, train, silentProgress),
    ).rejects.toMatchObject({ code: 'CONTEXT_ADAPTER_NO_CONTEXT' });
    expect(() => contextLogitFeatures(withDerivedContext(bare, ['amount']), ['amount', 'value'])).toThrow(
      expect.objectContaining({ code: 'CONTEXT_ADAPTER_NO_CONTEXT' }),
    );
  });

  it('keys its cached backbone by the context columns (another column, another key)', () => {
    const cfg = recipe('tuned', 2);
    cfg.model = { ...cfg.model, adapter: contextAdapter };
    const train = splitRows(ds.rows, 1).train;
    const plain = syntheticBinary(500, 20, 3);
    const a = pretrainKey(withDerivedContext(plain, ['amount']), train, cfg, 'cpu');
    const v = pretrainKey(withDerivedContext(plain, ['value']), train, cfg, 'cpu');
    expect(a).not.toBe(v);
    expect(pretrainKey(withDerivedContext(plain, ['amount']), train, cfg, 'cpu')).toBe(a);
  });

  it('survives a checkpoint round trip: trained, saved, described and served by the value API', async () => {
    await expectAdapterRoundTrip({ ...contextAdapter, d: 4 }, 'context-cost', { kind: 'context', d: 4 + 1 + 1 });
  });
});
