import * as tf from '@tensorflow/tfjs';

/**
 * A frozen pre-trained model modulated by adapter parameters phi. Only phi moves during
 * fine-tuning; everything here is batched over many phi at once (one row of `phis` per task).
 */
export interface AdaptedModel {
  readonly d: number;
  /** 2 for binary tasks (scores are positive-class probabilities), else the class count. */
  readonly classes: number;
  readonly adapterKind: 'input-bias' | 'film' | 'low-rank' | 'context';
  /**
   * Where phi shifts the output logits directly, when it does: entries index..index+count-1,
   * each adding `scale` x its value to one logit (a decision shift expressed in phi).
   */
  readonly logitShift?: { index: number; count: number; scale: number };
  /**
   * Per-task mean cross-entropy and its gradient with respect to phi, for n tasks, task i on
   * rows rows[i*batch .. (i+1)*batch).
   */
  lossAndGrad(
    phis: Float32Array,
    n: number,
    rows: Int32Array,
    batch: number,
  ): { loss: Float32Array; grad: Float32Array };
  /** Mean cross-entropy of each of n phis on the given rows (no gradient). */
  loss(phis: Float32Array, n: number, rows: Int32Array, batch: number): Float32Array;
  /**
   * Scores of the given rows under each of n phis: n x rows.length positive-class probabilities
   * (binary) or n x rows.length x classes probabilities.
   */
  predict(phis: Float32Array, n: number, rows: Int32Array): Float32Array;
  /** The length of an embedding, for models with an embedding head (`embed`). */
  readonly embedDim?: number;
  /**
   * Embeddings of the given rows under each of n phis: n x rows.length x embedDim, each row
   * L2-normalised (the output kind 'embedding' of the evaluator contract). Absent: the model
   * has no embedding head, and a metric that reads embeddings cannot be used with it.
   */
  embed?(phis: Float32Array, n: number, rows: Int32Array): Float32Array;
  /**
   * A loss of the embeddings (a metric-learning loss, e.g. supervisedContrastiveLoss) and its
   * gradient with respect to phi, per task, task i on rows rows[i*batch .. (i+1)*batch), as
   * lossAndGrad does for cross-entropy. Absent on models without an embedding head.
   */
  embeddingLossAndGrad?(
    phis: Float32Array,
    n: number,
    rows: Int32Array,
    batch: number,
    loss: EmbeddingLoss,
  ): { loss: Float32Array; grad: Float32Array };
  dispose(): void;
}

/**
 * Each task's loss of its batch's embeddings: `embeddings` [n, batch, embedDim] (L2-normalised
 * rows), `labels` [n, batch] (int32), the result [n].
 */
export type EmbeddingLoss = (embeddings: tf.Tensor3D, labels: tf.Tensor2D) => tf.Tensor1D;

/**
 * Per-task losses and their gradients with respect to each task's phi (row i of `phis`), given
 * the batched per-task loss: the gradient of the sum is each task's own gradient.
 */
export function perTaskLossAndGrad(
  phis: Float32Array,
  n: number,
  d: number,
  perTaskLoss: (phi: tf.Tensor2D) => tf.Tensor1D,
): { loss: Float32Array; grad: Float32Array } {
  return tf.tidy(() => {
    let losses: tf.Tensor1D | undefined;
    const grad = tf.grad((p: tf.Tensor) => {
      const l = perTaskLoss(p as tf.Tensor2D);
      losses = tf.keep(l);
      return tf.sum(l);
    })(tf.tensor2d(phis, [n, d]));
    const out = { loss: (losses as tf.Tensor1D).dataSync() as Float32Array, grad: grad.dataSync() as Float32Array };
    (losses as tf.Tensor1D).dispose();
    return out;
  });
}
