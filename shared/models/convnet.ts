import * as tf from '@tensorflow/tfjs';
import { type SparseDataset, toDense } from '../data/dataset.js';
import { BalancedSampler } from '../data/sampler.js';
import type { ProgressReporter } from '../ports/progress.port.js';
import { Rng } from '../util/random.js';
import { err, ok, type Result } from '../util/result.js';
import { type AdaptedModel, perTaskLossAndGrad } from './adapted-model.js';
import { ModelError } from './errors.js';
import type { PretrainConfig } from './mlp.js';

/**
 * A small ConvNet for square single-channel images (the 8x8 digits): two 3x3 'same'
 * convolutions with BatchNorm and LeakyReLU, then a linear classifier. The adapter is FiLM on
 * the second convolution's feature maps: a per-channel scale (1 + gamma) and shift beta,
 * d = 2 x channels.
 *
 * With `pool` (the larger images, Fashion-MNIST at 14 x 14): each convolution's maps are
 * average-pooled 2 x 2 (zero-padded at the bottom and right to an even side), the second
 * before its BatchNorm/bias (pooling is linear and per channel, so the folded network is the
 * same function); FiLM, LeakyReLU and the linear classifier then act on the pooled maps
 * (4 x 4 x 64 for 14 x 14 images: the frozen cache holds 1,024 floats per image).
 */
export interface ConvNetConfig {
  side: number;
  channels: [number, number];
  leakyAlpha: number;
  /** Pooled blocks (see above); absent: the digits network. */
  pool?: boolean;
  /** Factor applied to the pixel values (absent: 1/16, the digits' 0..16 scale). */
  inputScale?: number;
}

export const defaultConvNetConfig: ConvNetConfig = { side: 8, channels: [8, 16], leakyAlpha: 0.1 };

/** The ConvNet for Fashion-MNIST pooled to 14 x 14 (pixels 0..1): FiLM on 64 channels, d = 128. */
export const pooledConvNetConfig: ConvNetConfig = {
  side: 14,
  channels: [16, 64],
  leakyAlpha: 0.1,
  pool: true,
  inputScale: 1,
};

/** Side of the second block's (FiLM'd) maps. */
export function filmSide(cfg: ConvNetConfig): number {
  return cfg.pool ? Math.ceil(Math.ceil(cfg.side / 2) / 2) : cfg.side;
}

/** Entries of the classifier's input: the flattened FiLM'd maps. */
function classifierInputs(cfg: ConvNetConfig): number {
  const g = filmSide(cfg);
  return g * g * cfg.channels[1];
}

/**
 * 2 x 2 average pooling of [n, h, w, c] maps to [n, ceil(h/2), ceil(w/2), c], an odd side
 * zero-padded at the bottom/right first; slices, adds and reshapes only (all with wasm gradients).
 */
export function avgPool2(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h0, w0, c] = x.shape;
  const h = h0 + (h0 % 2);
  const w = w0 + (w0 % 2);
  const p =
    h === h0 && w === w0
      ? x
      : tf.pad(x, [
          [0, 0],
          [0, h - h0],
          [0, w - w0],
          [0, 0],
        ]);
  const pairs = tf.reshape(p, [(n * h) / 2, 2, w / 2, 2 * c]);
  const rowsSum = tf.reshape(
    tf.add(
      tf.slice(pairs, [0, 0, 0, 0], [(n * h) / 2, 1, w / 2, 2 * c]),
      tf.slice(pairs, [0, 1, 0, 0], [(n * h) / 2, 1, w / 2, 2 * c]),
    ),
    [(n * h * w) / 4, 2 * c],
  );
  const sum = tf.add(tf.slice(rowsSum, [0, 0], [(n * h * w) / 4, c]), tf.slice(rowsSum, [0, c], [(n * h * w) / 4, c]));
  return tf.reshape(tf.mul(sum, 0.25), [n, h / 2, w / 2, c]);
}

export interface FrozenConvNet {
  config: ConvNetConfig;
  classes: number;
  /** conv kernels [3, 3, in, out] (flattened [9 * in, out]) and biases, BatchNorm folded. */
  conv1: { w: Float32Array; b: Float32Array };
  conv2: { w: Float32Array; b: Float32Array };
  /** dense [side*side*c2, classes]. */
  dense: { w: Float32Array; b: Float32Array };
}

const EPS = 1e-5;

/**
 * A 3x3 'same' convolution as one matMul over the nine shifted copies of the input (im2col
 * with pad + slice + concat). The wasm backend has no Conv2DBackpropFilter kernel; these ops
 * all have wasm gradients. `k` is the kernel [3, 3, in, out] flattened to [9 * in, out].
 */
export function conv3x3(x: tf.Tensor4D, k: tf.Tensor2D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const padded = tf.pad(x, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  const cols: tf.Tensor4D[] = [];
  for (let dy = 0; dy < 3; dy++)
    for (let dx = 0; dx < 3; dx++) cols.push(tf.slice(padded, [0, dy, dx, 0], [n, h, w, c]));
  const patches = tf.reshape(tf.concat(cols, 3), [n * h * w, 9 * c]);
  return tf.reshape(tf.matMul(patches, k), [n, h, w, k.shape[1]]);
}

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

/**
 * The frozen ConvNet with its FiLM adapter, batched over tasks. FiLM modulates the second
 * convolution's output, so both convolutions are frozen work: the second one's pre-activations
 * are computed once for every image, and a step or a prediction costs only FiLM, LeakyReLU and
 * the linear classifier (`uncachedConvLogits` in test/core/model.test.ts is the whole network,
 * the reference).
 */
export class FrozenConvNetModel implements AdaptedModel {
  readonly d: number;
  readonly classes: number;
  readonly adapterKind = 'film' as const;
  readonly embedDim: number;
  /** conv2(conv1(x)) + b2, before FiLM, for every image ([rows][side * side * c2]). */
  private readonly z2: Float32Array;
  private readonly wd: tf.Tensor2D;
  private readonly bd: tf.Tensor1D;
  private readonly labels: Int32Array;
  private readonly per: number;

  constructor(
    readonly frozen: FrozenConvNet,
    ds: SparseDataset,
  ) {
    const { channels } = frozen.config;
    const g = filmSide(frozen.config);
    this.d = 2 * channels[1];
    this.embedDim = channels[1];
    this.classes = frozen.classes;
    this.labels = ds.labels;
    this.per = g * g * channels[1];
    this.z2 = frozenConvPreactivations(frozen, ds);
    this.wd = tf.tensor2d(frozen.dense.w, [classifierInputs(frozen.config), frozen.classes]);
    this.bd = tf.tensor1d(frozen.dense.b);
  }

  private first(rows: Int32Array): tf.Tensor2D {
    const out = new Float32Array(rows.length * this.per);
    rows.forEach((r, i) => out.set(this.z2.subarray(r * this.per, (r + 1) * this.per), i * this.per));
    return tf.tensor2d(out, [rows.length, this.per]);
  }

  /** The classifier's input [n * batch, inputs]: the FiLM'd maps; `shared` means every task sees the same `batch` rows. */
  private features(phi: tf.Tensor2D, first: tf.Tensor2D, n: number, batch: number, shared: boolean): tf.Tensor2D {
    const { channels, leakyAlpha } = this.frozen.config;
    const c2 = channels[1];
    const spatial = this.per / c2;
    const z5 = tf.reshape(first, [shared ? 1 : n, batch, spatial, c2]);
    const gamma = tf.reshape(tf.slice(phi, [0, 0], [n, c2]), [n, 1, 1, c2]);
    const beta = tf.reshape(tf.slice(phi, [0, c2], [n, c2]), [n, 1, 1, c2]);
    const h = tf.leakyRelu(tf.add(tf.mul(z5, tf.add(gamma, 1)), beta), leakyAlpha);
    return tf.reshape(h, [n * batch, spatial * c2]);
  }

  /** Logits [n * batch, classes]. */
  private logits(phi: tf.Tensor2D, first: tf.Tensor2D, n: number, batch: number, shared: boolean): tf.Tensor2D {
    return tf.add(tf.matMul(this.features(phi, first, n, batch, shared), this.wd), this.bd) as tf.Tensor2D;
  }

  private taskLoss(logits: tf.Tensor2D, rows: Int32Array, n: number, batch: number): tf.Tensor1D {
    const y = tf.oneHot(
      tf.tensor1d(
        Int32Array.from(rows, (r) => this.labels[r] as number),
        'int32',
      ),
      this.classes,
    );
    const picked = tf.sum(tf.mul(tf.logSoftmax(logits), y), 1);
    return tf.neg(tf.mean(tf.reshape(picked, [n, batch]), 1)) as tf.Tensor1D;
  }

  /**
   * The embedding head: the global average of the FiLM'd, LeakyReLU'd maps (channels[1] = 64
   * entries), L2-normalised; n x rows.length x 64, row-major. FiLM moves it as it moves the logits.
   */
  embed(phis: Float32Array, n: number, rows: Int32Array): Float32Array {
    const c2 = this.frozen.config.channels[1];
    return tf.tidy(() => {
      const h = this.features(tf.tensor2d(phis, [n, this.d]), this.first(rows), n, rows.length, true);
      const pooled = tf.mean(tf.reshape(h, [n * rows.length, this.per / c2, c2]), 1);
      const norm = tf.maximum(tf.sqrt(tf.sum(tf.square(pooled), 1, true)), 1e-12);
      return tf.div(pooled, norm).dataSync() as Float32Array;
    });
  }

  lossAndGrad(
    phis: Float32Array,
    n: number,
    rows: Int32Array,
    batch: number,
  ): { loss: Float32Array; grad: Float32Array } {
    return tf.tidy(() => {
      const first = this.first(rows);
      return perTaskLossAndGrad(phis, n, this.d, (phi) =>
        this.taskLoss(this.logits(phi, first, n, batch, false), rows, n, batch),
      );
    });
  }

  loss(phis: Float32Array, n: number, rows: Int32Array, batch: number): Float32Array {
    return tf.tidy(
      () =>
        this.taskLoss(
          this.logits(tf.tensor2d(phis, [n, this.d]), this.first(rows), n, batch, false),
          rows,
          n,
          batch,
        ).dataSync() as Float32Array,
    );
  }

  predict(phis: Float32Array, n: number, rows: Int32Array): Float32Array {
    return tf.tidy(
      () =>
        tf
          .softmax(this.logits(tf.tensor2d(phis, [n, this.d]), this.first(rows), n, rows.length, true))
          .dataSync() as Float32Array,
    );
  }

  dispose(): void {
    for (const t of [this.wd, this.bd]) t.dispose();
  }
}

/**
 * The frozen part of the ConvNet for every image: conv2(leakyRelu(conv1(x / 16))) + b2, the
 * second convolution's pre-activations ([rows][side * side * c2]; with `pool`, pooled as the
 * config says: [rows][filmSide^2 * c2]), a block of images at a time
 * to keep the im2col buffers small (each image's result does not depend on its neighbours).
 */
export function frozenConvPreactivations(frozen: FrozenConvNet, ds: SparseDataset): Float32Array {
  const { side, channels, leakyAlpha } = frozen.config;
  if (ds.features !== side * side) throw convNetNeedsImages(ds);
  const g = filmSide(frozen.config);
  const per = g * g * channels[1];
  const out = new Float32Array(ds.rows * per);
  const block = 256;
  const k1 = tf.tensor2d(frozen.conv1.w, [9, channels[0]]);
  const b1 = tf.tensor1d(frozen.conv1.b);
  const k2 = tf.tensor2d(frozen.conv2.w, [9 * channels[0], channels[1]]);
  const b2 = tf.tensor1d(frozen.conv2.b);
  try {
    for (let r0 = 0; r0 < ds.rows; r0 += block) {
      const ids = Int32Array.from({ length: Math.min(block, ds.rows - r0) }, (_, i) => r0 + i);
      const z = tf.tidy(() => {
        const x = tf.mul(
          tf.tensor4d(toDense(ds, ids), [ids.length, side, side, 1]),
          frozen.config.inputScale ?? 1 / 16,
        ) as tf.Tensor4D;
        const h1 = tf.leakyRelu(tf.add(conv3x3(x, k1), b1), leakyAlpha) as tf.Tensor4D;
        const z = frozen.config.pool ? avgPool2(conv3x3(avgPool2(h1), k2)) : conv3x3(h1, k2);
        return tf.add(z, b2).dataSync() as Float32Array;
      });
      out.set(z, r0 * per);
    }
  } finally {
    for (const t of [k1, b1, k2, b2]) t.dispose();
  }
  return out;
}

/** The side of the square images a dataset holds, or the user mistake of a ConvNet on other data. */
export function imageSide(ds: Pick<SparseDataset, 'features' | 'name'>): Result<number, ModelError> {
  const side = Math.round(Math.sqrt(ds.features));
  return side * side === ds.features ? ok(side) : err(convNetNeedsImages(ds));
}

function convNetNeedsImages(ds: Pick<SparseDataset, 'features' | 'name'>): ModelError {
  return new ModelError(
    'CONVNET_NEEDS_IMAGES',
    `--architecture convnet needs square images (side x side features, e.g. digits: 8 x 8); dataset '${ds.name}' has ${ds.features} features (use --architecture mlp)`,
    { features: ds.features },
  );
}
