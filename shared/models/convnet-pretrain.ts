import * as tf from '@tensorflow/tfjs';
import { type SparseDataset, toDense } from '../data/dataset.js';
import { BalancedSampler } from '../data/sampler.js';
import type { ProgressReporter } from '../ports/progress.port.js';
import { Rng } from '../util/random.js';
import { avgPool2, conv3x3 } from './conv-ops.js';
import { type ConvNetConfig, classifierInputs, convNetNeedsImages, type FrozenConvNet } from './convnet.js';
import type { PretrainConfig } from './mlp.js';

/** BatchNorm's epsilon (folded into the frozen kernels after training). */
const EPS = 1e-5;

function images(ds: SparseDataset, side: number): tf.Tensor4D {
  if (ds.features !== side * side) throw convNetNeedsImages(ds);
  return tf.tensor4d(toDense(ds), [ds.rows, side, side, 1]);
}

export async function pretrainConvNet(
  ds: SparseDataset,
  trainRows: Int32Array,
  cfg: ConvNetConfig,
  train: PretrainConfig,
  progress: ProgressReporter,
): Promise<FrozenConvNet> {
  return pretrainOnCurrentBackend(ds, trainRows, cfg, train, progress);
}

function pretrainOnCurrentBackend(
  ds: SparseDataset,
  trainRows: Int32Array,
  cfg: ConvNetConfig,
  train: PretrainConfig,
  progress: ProgressReporter,
): FrozenConvNet {
  const rng = new Rng(train.seed);
  const [c1, c2] = cfg.channels;
  const s = cfg.side;
  const init = (n: number, fanIn: number) => rng.normals(n, Math.sqrt(2 / fanIn));
  const v = (x: tf.Tensor) => tf.tidy(() => tf.variable(x));
  const k1 = v(tf.tensor2d(init(9 * c1, 9), [9, c1]));
  const k2 = v(tf.tensor2d(init(9 * c1 * c2, 9 * c1), [9 * c1, c2]));
  const inputs = classifierInputs(cfg);
  const wd = v(tf.tensor2d(init(inputs * ds.classes, inputs), [inputs, ds.classes]));
  const bd = v(tf.zeros([ds.classes]));
  const g1 = v(tf.ones([c1]));
  const be1 = v(tf.zeros([c1]));
  const g2 = v(tf.ones([c2]));
  const be2 = v(tf.zeros([c2]));
  const run = [
    { mean: new Float32Array(c1), variance: new Float32Array(c1).fill(1) },
    { mean: new Float32Array(c2), variance: new Float32Array(c2).fill(1) },
  ];
  const x = tf.tidy(() => tf.mul(images(ds, s), cfg.inputScale ?? 1 / 16));
  const optimizer = tf.train.adam(train.learningRate);
  const sampler = new BalancedSampler(trainRows, ds.labels, ds.classes);
  const perEpoch = Math.max(1, Math.ceil(trainRows.length / train.batchSize));
  progress.start('pre-train ConvNet (cross-entropy)', train.epochs * perEpoch);
  let step = 0;
  for (let e = 0; e < train.epochs; e++) {
    for (let b = 0; b < perEpoch; b++) {
      const idx = sampler.sample(rng, train.batchSize);
      const stats: tf.Tensor[] = [];
      tf.tidy(() => {
        const xb = tf.gather(x, tf.tensor1d(idx, 'int32'));
        const y = tf.oneHot(
          tf.tensor1d(
            Int32Array.from(idx, (r) => ds.labels[r] as number),
            'int32',
          ),
          ds.classes,
        );
        optimizer.minimize(() => {
          const bn = (z: tf.Tensor4D, g: tf.Variable, be: tf.Variable) => {
            const m = tf.moments(z, [0, 1, 2]);
            stats.push(tf.keep(m.mean.clone()), tf.keep(m.variance.clone()));
            return tf.add(tf.mul(tf.div(tf.sub(z, m.mean), tf.sqrt(tf.add(m.variance, EPS))), g), be) as tf.Tensor4D;
          };
          const h1 = tf.leakyRelu(
            bn(conv3x3(xb as tf.Tensor4D, k1 as unknown as tf.Tensor2D), g1, be1),
            cfg.leakyAlpha,
          );
          const k2t = k2 as unknown as tf.Tensor2D;
          const z2 = cfg.pool ? avgPool2(conv3x3(avgPool2(h1 as tf.Tensor4D), k2t)) : conv3x3(h1 as tf.Tensor4D, k2t);
          const h2 = tf.leakyRelu(bn(z2, g2, be2), cfg.leakyAlpha);
          const logits = tf.add(tf.matMul(tf.reshape(h2, [idx.length, -1]), wd as unknown as tf.Tensor2D), bd);
          return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
        });
      });
      for (let i = 0; i < 2; i++) {
        const m = (stats[2 * i] as tf.Tensor).dataSync();
        const va = (stats[2 * i + 1] as tf.Tensor).dataSync();
        const r = run[i] as { mean: Float32Array; variance: Float32Array };
        for (let j = 0; j < r.mean.length; j++) {
          r.mean[j] = 0.95 * (r.mean[j] as number) + 0.05 * (m[j] as number);
          r.variance[j] = 0.95 * (r.variance[j] as number) + 0.05 * (va[j] as number);
        }
      }
      for (const t of stats) t.dispose();
      step++;
      if (step % 10 === 0) progress.tick(step);
    }
  }
  progress.end();
  optimizer.dispose();
  x.dispose();
  const fold = (k: tf.Variable, g: tf.Variable, be: tf.Variable, r: { mean: Float32Array; variance: Float32Array }) => {
    const w = Float32Array.from(k.dataSync());
    const out = r.mean.length;
    const gs = g.dataSync();
    const bs = be.dataSync();
    const b = new Float32Array(out);
    for (let o = 0; o < out; o++) {
      const sc = (gs[o] as number) / Math.sqrt((r.variance[o] as number) + EPS);
      b[o] = (bs[o] as number) - (r.mean[o] as number) * sc;
      for (let i = o; i < w.length; i += out) w[i] = (w[i] as number) * sc;
    }
    return { w, b };
  };
  const frozen: FrozenConvNet = {
    config: cfg,
    classes: ds.classes,
    conv1: fold(k1, g1, be1, run[0] as { mean: Float32Array; variance: Float32Array }),
    conv2: fold(k2, g2, be2, run[1] as { mean: Float32Array; variance: Float32Array }),
    dense: { w: Float32Array.from(wd.dataSync()), b: Float32Array.from(bd.dataSync()) },
  };
  for (const t of [k1, k2, wd, bd, g1, be1, g2, be2]) t.dispose();
  return frozen;
}
