import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { spearman } from '../../shared/method/stats.js';
import { ValueFunctionNet } from '../../shared/method/value-function.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import { ValueFunctionNetF32 } from '../../shared/method/value-function-net-f32.js';
import {
  batchLoss,
  type LabelledTask,
  labelTask,
  packBatch,
  paperTrainDefaults,
  type TrainingEngine,
  trainOffline,
  trainReptileOnline,
  tunedTrainDefaults,
  type ValueFunctionTrainConfig,
} from '../../shared/method/value-function-training.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import type { DenseLayer, ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { Rng } from '../../shared/util/random.js';
import { useTestBackend } from '../helpers/backend.js';

// Heavy in-process work (value-function fits on tfjs and the f32 kernels): longer than the unit tier's 20-s default under load.
vi.setConfig({ testTimeout: 60_000 });

beforeAll(async () => {
  await useTestBackend();
});

/**
 * Synthetic trajectories: phi takes a random walk from a random start (as adapter training
 * does, the steps are not collinear: collinear rows put the middle one exactly on every
 * BatchNorm mean, a ReLU kink where rounding alone decides), the "metric" is a smooth function
 * of phi plus noise, and labels carry a per-step std as the GP labels do.
 */
function syntheticTasks(n: number, t1: number, d: number, seed: number): LabelledTask[] {
  const rng = new Rng(seed);
  const dir = rng.normals(d);
  return Array.from({ length: n }, () => {
    const x = new Float32Array(t1 * d);
    const phi = rng.normals(d);
    const mean = new Float32Array(t1);
    const std = new Float32Array(t1);
    for (let t = 0; t < t1; t++) {
      let s = 0;
      for (let j = 0; j < d; j++) {
        if (t > 0) phi[j] = (phi[j] as number) + 0.3 * rng.normal();
        x[t * d + j] = phi[j] as number;
        s += (phi[j] as number) * (dir[j] as number);
      }
      mean[t] = Math.tanh(s / Math.sqrt(d)) + 0.3 * Math.sin(x[t * d] as number) + 0.05 * rng.normal();
      std[t] = 0.05 + 0.2 * rng.next();
    }
    return labelTask(x, mean, std, 2);
  });
}

/** Largest |a - b| / (1 + |b|) over two equally long lists of arrays. */
function maxRelDiff(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  a.forEach((ai, k) => {
    const bk = b[k] as ArrayLike<number>;
    expect(ai.length).toBe(bk.length);
    for (let i = 0; i < ai.length; i++)
      worst = Math.max(worst, Math.abs((ai[i] as number) - (bk[i] as number)) / (1 + Math.abs(bk[i] as number)));
  });
  return worst;
}

const layerArrays = (layers: DenseLayer[]) => layers.flatMap((l) => [l.weights, l.bias]);

function checkpoint(d: number, layers: DenseLayer[]): ValueFunctionCheckpoint {
  return {
    format: 'metricopt.value-function',
    schemaVersion: 1,
    id: 'test',
    version: 1,
    createdAt: new Date(0).toISOString(),
    libraryVersion: 'test',
    d,
    metric: { name: 'mcr', direction: 'minimize' },
    recipe: 'tuned',
    dataset: 'synthetic',
    adapter: { kind: 'input-bias', d },
    inputNormalisation: { mean: Array(d).fill(0), std: Array(d).fill(1) },
    targetNormalisation: { mean: 0, std: 1 },
    hiddenActivation: 'relu',
    embeddingLayer: 3,
    members: [{ layers }],
    training: { tasks: 0, heldOutTasks: 0, heldOutMae: null, constantMae: null, spearman: null },
  };
}

const recipes: [string, ValueFunctionTrainConfig][] = [
  ['tuned (Adam, no BatchNorm, no embedding term)', { ...tunedTrainDefaults, seed: 3 }],
  ['paper (BatchNorm, embedding term with hard mining)', { ...paperTrainDefaults, seed: 4 }],
  ['BatchNorm and the embedding term with Adam', { ...tunedTrainDefaults, batchNorm: true, oeWeight: 1, seed: 5 }],
  ['the embedding term without BatchNorm', { ...tunedTrainDefaults, oeWeight: 1, seed: 6 }],
];

describe('ValueFunctionNetF32', () => {
  it('starts from the tfjs net’s weights for the same seed', () => {
    const arch = { d: 7, hidden: [12, 8, 5], batchNorm: true };
    const ref = new ValueFunctionNet(arch, 11);
    const net = new ValueFunctionNetF32(arch, 11);
    expect(maxRelDiff(net.inTfjsLayout(net.params), ref.snapshot())).toBe(0);
    ref.dispose();
  });

  it.each(recipes)('has the tfjs loss and gradients on the same batch and weights: %s', (_, cfg) => {
    const d = 9;
    const tasks = syntheticTasks(12, 26, d, 1);
    const batch = packBatch(tasks, d);
    const arch = { d, hidden: [16, 12, 8], batchNorm: cfg.batchNorm };
    const ref = new ValueFunctionNet(arch, cfg.seed);
    const net = new ValueFunctionNetF32(arch, cfg.seed);
    // Non-trivial BatchNorm parameters on both.
    const rng = new Rng(2);
    for (let i = 0; i < net.params.length; i++) net.params[i] = (net.params[i] as number) + rng.normal() * 0.05;
    net.paramsChanged();
    ref.restore(net.inTfjsLayout(net.params));
    const loss = net.lossAndGradient(batch, cfg.gamma, cfg.oeWeight);
    const { value, grads } = tf.variableGrads(() => batchLoss(ref, batch, d, cfg, []), ref.variables);
    expect(Math.abs(loss - (value.dataSync()[0] as number))).toBeLessThan(1e-5 * Math.abs(loss));
    const refGrads = ref.variables.map((v) => (grads[v.name] as tf.Tensor).dataSync());
    expect(maxRelDiff(net.inTfjsLayout(net.grads), refGrads)).toBeLessThan(2e-5);
    tf.dispose([value, ...Object.values(grads)]);
    ref.dispose();
  });

  it.each(recipes)('has gradients equal to central finite differences: %s', (_, cfg) => {
    const d = 5;
    const batch = packBatch(syntheticTasks(3, 20, d, 7), d);
    const net = new ValueFunctionNetF32({ d, hidden: [10, 8, 6], batchNorm: cfg.batchNorm }, cfg.seed);
    net.lossAndGradient(batch, cfg.gamma, cfg.oeWeight);
    const grads = Float64Array.from(net.grads);
    // The layers run in float32 (the loss's rounding is ~1e-7 of it), so the step is 1e-3 and the
    // tolerance 1e-2 of the gradient; a wrong gradient is off by far more.
    const h = 1e-3;
    const rng = new Rng(4);
    let checked = 0;
    for (let trial = 0; trial < 100; trial++) {
      const k = rng.int(net.params.length);
      const base = net.params[k] as number;
      const at = (v: number) => {
        net.params[k] = v;
        net.paramsChanged();
        return net.lossAndGradient(batch, cfg.gamma, cfg.oeWeight);
      };
      // params are float32: step by what the perturbed values really are.
      const plus = Math.fround(base + h);
      const minus = Math.fround(base - h);
      const fd = (at(plus) - at(minus)) / (plus - minus);
      at(base);
      // The loss is piecewise smooth (|.|, ReLU, hard-pair selection): a kink inside [-h, h] shows
      // as a jump (more often with this step), so some coordinates may disagree, never many.
      if (Math.abs(fd - (grads[k] as number)) < 1e-2 * Math.max(1, Math.abs(grads[k] as number))) checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(85);
  });
});

describe('value-function training engines', () => {
  const trainers = {
    offline: (tasks: LabelledTask[], d: number, cfg: ValueFunctionTrainConfig) =>
      trainOffline(tasks, d, cfg, silentProgress),
    online: (tasks: LabelledTask[], d: number, cfg: ValueFunctionTrainConfig) =>
      trainReptileOnline(tasks, d, cfg, silentProgress),
  };

  async function layersOf(
    engine: TrainingEngine,
    how: keyof typeof trainers,
    tasks: LabelledTask[],
    d: number,
    cfg: ValueFunctionTrainConfig,
  ) {
    const net = await trainers[how](tasks, d, { ...cfg, engine });
    const layers = net.toLayers();
    net.dispose();
    return layers;
  }

  it.each([
    ['offline', { ...tunedTrainDefaults, epochs: 3, taskBatch: 8, seed: 2 }],
    ['online', { ...paperTrainDefaults, innerSteps: 2, seed: 3 }],
    // Not Adam with BatchNorm: the bias before a BatchNorm has no gradient, which tfjs computes
    // as float32 noise (~1e-7) that Adam's normalisation turns into steps of a good fraction of
    // the step size; here it is ~1e-16. The two then drift apart in that bias only.
    ['offline', { ...tunedTrainDefaults, oeWeight: 1, epochs: 2, taskBatch: 8, seed: 4 }],
  ] as const)('train the same weights on f32 and tfjs (%s, %#)', async (how, cfg) => {
    const d = 8;
    const tasks = syntheticTasks(24, 11, d, 9);
    const f32 = await layersOf('f32', how, tasks, d, cfg);
    const ref = await layersOf('tfjs', how, tasks, d, cfg);
    expect(maxRelDiff(layerArrays(f32), layerArrays(ref))).toBeLessThan(1e-3);
    // Same checkpoint format: both serve through the same compiled function.
    const x = syntheticTasks(4, 11, d, 10).flatMap((t) => Array.from(t.x));
    const a = new CompiledValueFunction(checkpoint(d, f32)).predict(Float32Array.from(x), x.length / d);
    const b = new CompiledValueFunction(checkpoint(d, ref)).predict(Float32Array.from(x), x.length / d);
    expect(maxRelDiff([a], [b])).toBeLessThan(1e-3);
  });

  it('reach the same held-out Spearman (within 0.01) on a fixed seed with the default recipe', async () => {
    const d = 16;
    const all = syntheticTasks(260, 26, d, 21);
    const train = all.slice(0, 200);
    const heldOut = all.slice(200);
    const cfg = { ...tunedTrainDefaults, epochs: 12, seed: 7 };
    const x = Float32Array.from(heldOut.flatMap((t) => Array.from(t.x)));
    const truth = heldOut.flatMap((t) => Array.from(t.labels.mean));
    const rho = async (engine: TrainingEngine) => {
      const vf = new CompiledValueFunction(checkpoint(d, await layersOf(engine, 'offline', train, d, cfg)));
      return spearman(Array.from(vf.predict(x, truth.length)), truth);
    };
    const f32 = await rho('f32');
    const ref = await rho('tfjs');
    expect(f32).toBeGreaterThan(0.5);
    expect(Math.abs(f32 - ref)).toBeLessThan(0.01);
  });

  it('is deterministic: the same seed gives the same weights bit for bit', async () => {
    const d = 6;
    const tasks = syntheticTasks(20, 9, d, 3);
    const cfg = { ...tunedTrainDefaults, epochs: 2, taskBatch: 8, seed: 1 };
    expect(await layersOf('f32', 'offline', tasks, d, cfg)).toEqual(await layersOf('f32', 'offline', tasks, d, cfg));
  });
});
