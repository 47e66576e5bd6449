import * as tf from '@tensorflow/tfjs';
import { type SparseDataset, toDense } from '../data/dataset.js';
import { type AdaptedModel, type EmbeddingLoss, perTaskLossAndGrad } from './adapted-model.js';
import { avgPool2, conv3x3 } from './conv-ops.js';
import { classifierInputs, convNetNeedsImages, type FrozenConvNet, filmSide } from './convnet.js';

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
    return tf.tidy(
      () =>
        this.embedding(
          tf.tensor2d(phis, [n, this.d]),
          this.first(rows),
          n,
          rows.length,
          true,
        ).dataSync() as Float32Array,
    );
  }

  /** The embeddings [n * batch, channels[1]] (see `embed`). */
  private embedding(phi: tf.Tensor2D, first: tf.Tensor2D, n: number, batch: number, shared: boolean): tf.Tensor2D {
    const c2 = this.frozen.config.channels[1];
    const h = this.features(phi, first, n, batch, shared);
    const pooled = tf.mean(tf.reshape(h, [n * batch, this.per / c2, c2]), 1);
    const norm = tf.maximum(tf.sqrt(tf.sum(tf.square(pooled), 1, true)), 1e-12);
    return tf.div(pooled, norm) as tf.Tensor2D;
  }

  embeddingLossAndGrad(
    phis: Float32Array,
    n: number,
    rows: Int32Array,
    batch: number,
    loss: EmbeddingLoss,
  ): { loss: Float32Array; grad: Float32Array } {
    return tf.tidy(() => {
      const first = this.first(rows);
      const labels = tf.tensor2d(
        Int32Array.from(rows, (r) => this.labels[r] as number),
        [n, batch],
        'int32',
      );
      return perTaskLossAndGrad(phis, n, this.d, (phi) =>
        loss(tf.reshape(this.embedding(phi, first, n, batch, false), [n, batch, this.embedDim]), labels),
      );
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
