import * as tf from '@tensorflow/tfjs';
import type { EmbeddingLoss } from './adapted-model.js';

/**
 * The supervised contrastive loss (Khosla et al. 2020, "SupCon", L_out) of each task's batch of
 * L2-normalised embeddings, the metric-learning loss of the `metric_learning_finetune` baseline:
 * for an anchor i with in-batch positives P(i) (same label, not i),
 *   l_i = -1/|P(i)| sum_{p in P(i)} log( exp(e_i.e_p / tau) / sum_{a != i} exp(e_i.e_a / tau) ),
 * averaged over the anchors that have a positive (a task with none: 0).
 *
 * Why this loss and not a proxy loss (Proxy-NCA, Proxy-Anchor): it has no parameter beyond phi,
 * so the baseline fine-tunes exactly what ce_finetune fine-tunes, with one hyperparameter (tau);
 * a proxy loss adds a learnable proxy per class with its own initialisation and step size. The
 * class-balanced batches (64 rows over 10 classes) give every anchor several positives.
 */
export function supervisedContrastiveLoss(temperature: number): EmbeddingLoss {
  return (embeddings, labels) =>
    tf.tidy(() => {
      const [n, batch] = embeddings.shape;
      const sim = tf.div(tf.matMul(embeddings, embeddings, false, true), temperature) as tf.Tensor3D;
      const self = tf.reshape(tf.eye(batch), [1, batch, batch]);
      // The anchor itself leaves the denominator (a large negative, not -Infinity: 0 x it must stay 0).
      const others = tf.sub(sim, tf.mul(self, 1e9));
      const logProb = tf.sub(others, tf.logSumExp(others, 2, true));
      const same = tf.cast(tf.equal(tf.reshape(labels, [n, batch, 1]), tf.reshape(labels, [n, 1, batch])), 'float32');
      const positives = tf.sub(same, self);
      const count = tf.sum(positives, 2);
      const hasPositive = tf.cast(tf.greater(count, 0), 'float32');
      const perAnchor = tf.div(tf.sum(tf.mul(positives, logProb), 2), tf.maximum(count, 1));
      const anchors = tf.maximum(tf.sum(hasPositive, 1), 1);
      return tf.neg(tf.div(tf.sum(tf.mul(perAnchor, hasPositive), 1), anchors)) as tf.Tensor1D;
    });
}
