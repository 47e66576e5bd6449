import type { Sampler } from '../../data/sampler.js';
import { guidedEsDirection } from '../../method/guided-es.js';
import { BatchedOptimizer, projectToBall } from '../../method/optimizers.js';
import type { ValueFn } from '../../method/value-function-f32.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import type { Rng } from '../../util/random.js';
import type { MetaTestConfig } from './meta-test-config.js';

/**
 * MetricOpt's path: follow the value function (and the loss, Eq. 1) from `mStart` for
 * `cfg.steps` steps, by Guided ES (Eq. 3-4) or value-function gradient descent, inside the trust
 * region; phi_0 .. phi_T and the time spent in the steps (ms). `rows` is the mini-batch buffer.
 */
export function followValueFunction(
  cfg: MetaTestConfig,
  model: AdaptedModel,
  vf: ValueFn,
  mSampler: Sampler,
  mStart: Float32Array,
  rows: Int32Array,
  esRng: Rng,
  mRng: Rng,
): { path: Float32Array[]; time: number } {
  const d = model.d;
  const T = cfg.steps;
  const B = cfg.batchSize;
  const mPath: Float32Array[] = [mStart.slice()];
  const mOpt = new BatchedOptimizer(cfg.vfOptimizer, cfg.vfLearningRate, d);
  const phi = mStart.slice();
  const grads: Float32Array[] = [];
  const g = new Float32Array(d);
  let mTime = 0;
  for (let t = 0; t < T; t++) {
    mSampler.sampleInto(mRng, rows);
    const t0 = performance.now();
    if (cfg.method === 'guided-es') {
      const { grad } = model.lossAndGrad(phi, 1, rows, B);
      grads.push(grad.slice());
      if (grads.length > cfg.es.k) grads.shift();
      const scoreFn =
        cfg.es.lambda > 0
          ? (p: Float32Array) => cfg.es.lambda * vf.value(p) + (model.loss(p, 1, rows, B)[0] as number)
          : (p: Float32Array) => vf.value(p);
      const u = guidedEsDirection(scoreFn, phi, grads, cfg.es, esRng);
      mOpt.step(phi, u);
    } else {
      vf.valueAndGradient(phi, g);
      if (cfg.lossWeight > 0) {
        const { grad } = model.lossAndGrad(phi, 1, rows, B);
        for (let j = 0; j < d; j++) g[j] = (g[j] as number) + cfg.lossWeight * (grad[j] as number);
      }
      mOpt.step(phi, g);
    }
    projectToBall(phi, mStart, cfg.trustRadius);
    mTime += performance.now() - t0;
    mPath.push(phi.slice());
  }
  return { path: mPath, time: mTime };
}
