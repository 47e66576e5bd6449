import * as tf from '@tensorflow/tfjs';

/**
 * The value-function loss of one task (paper Eq. 2), batched over tasks:
 *   L = gamma * L_regress + L_oe
 *   L_regress = sum_t |f(phi_t) - M_t| / s_t / sum_t 1 / s_t
 *   L_oe = mean over anchors of softplus(D(t, hardest positive) - D(t, hardest negative))
 * with positives/negatives split by the Fisher ratio r = (M_t - M_t')^2 / (s_t^2 + s_t'^2) < 2.
 */
export interface TaskLabels {
  /** GP mean per step (targets, in the value function's output units). */
  mean: Float32Array;
  /** GP std per step (same units). */
  std: Float32Array;
}

export interface FisherMasks {
  /** [T1 x T1] 1 where t' is a positive of anchor t (r < threshold, t' != t). */
  positive: Float32Array;
  negative: Float32Array;
  /** [T1] 1 where the anchor has at least one positive and one negative. */
  valid: Float32Array;
}

export function fisherRatio(m1: number, s1: number, m2: number, s2: number): number {
  return (m1 - m2) ** 2 / (s1 * s1 + s2 * s2);
}

export function fisherMasks(labels: TaskLabels, threshold = 2): FisherMasks {
  const n = labels.mean.length;
  const positive = new Float32Array(n * n);
  const negative = new Float32Array(n * n);
  const valid = new Float32Array(n);
  for (let a = 0; a < n; a++) {
    let hasPos = false;
    let hasNeg = false;
    for (let b = 0; b < n; b++) {
      if (a === b) continue;
      const r = fisherRatio(
        labels.mean[a] as number,
        labels.std[a] as number,
        labels.mean[b] as number,
        labels.std[b] as number,
      );
      if (r < threshold) {
        positive[a * n + b] = 1;
        hasPos = true;
      } else {
        negative[a * n + b] = 1;
        hasNeg = true;
      }
    }
    valid[a] = hasPos && hasNeg ? 1 : 0;
  }
  return { positive, negative, valid };
}

/**
 * Hard mining for one anchor, for tests and clarity: the positive farthest from the anchor and
 * the negative closest to it in embedding space (indices, or -1 when a set is empty).
 */
export function hardestPair(
  distances: ArrayLike<number>,
  masks: FisherMasks,
  anchor: number,
  n: number,
): [number, number] {
  let pos = -1;
  let neg = -1;
  for (let b = 0; b < n; b++) {
    const dist = distances[anchor * n + b] as number;
    if (masks.positive[anchor * n + b] === 1 && (pos < 0 || dist > (distances[anchor * n + pos] as number))) pos = b;
    if (masks.negative[anchor * n + b] === 1 && (neg < 0 || dist < (distances[anchor * n + neg] as number))) neg = b;
  }
  return [pos, neg];
}

/**
 * Hard mining for a batch of tasks: for every anchor (task b, step t) the flat row index of its
 * hardest positive and hardest negative, chosen on the current embeddings (the selection is
 * piecewise constant, so it carries no gradient). Anchors without both sets point at themselves
 * and are masked out by `valid`.
 */
export function selectHardPairs(
  embedding: Float32Array,
  e: number,
  masks: readonly FisherMasks[],
  t1: number,
): { posIndex: Int32Array; negIndex: Int32Array; valid: Float32Array } {
  const n = masks.length * t1;
  const posIndex = new Int32Array(n);
  const negIndex = new Int32Array(n);
  const valid = new Float32Array(n);
  const dist = new Float64Array(t1 * t1);
  masks.forEach((m, b) => {
    const base = b * t1;
    for (let i = 0; i < t1; i++) {
      for (let j = i + 1; j < t1; j++) {
        let s = 0;
        for (let k = 0; k < e; k++) {
          const diff = (embedding[(base + i) * e + k] as number) - (embedding[(base + j) * e + k] as number);
          s += diff * diff;
        }
        const dd = Math.sqrt(s);
        dist[i * t1 + j] = dd;
        dist[j * t1 + i] = dd;
      }
    }
    for (let a = 0; a < t1; a++) {
      const [p, q] = hardestPair(dist, m, a, t1);
      const ok = m.valid[a] === 1 && p >= 0 && q >= 0;
      posIndex[base + a] = base + (ok ? p : a);
      negIndex[base + a] = base + (ok ? q : a);
      valid[base + a] = ok ? 1 : 0;
    }
  });
  return { posIndex, negIndex, valid };
}

/** A batch of tasks packed task-major: B tasks of T1 rows each. */
export interface PackedBatch {
  B: number;
  T1: number;
  /** [B * T1 x d] inputs. */
  x: Float32Array;
  /** [B * T1] targets and their stds. */
  mean: Float32Array;
  std: Float32Array;
  masks: readonly FisherMasks[];
}

export interface LossInputs {
  /** [B, T1] predictions. */
  out: tf.Tensor2D;
  /** [B * T1, E] embeddings, task-major. */
  embedding: tf.Tensor2D;
  /** [B, T1] targets and stds. */
  mean: tf.Tensor2D;
  std: tf.Tensor2D;
  /** Hard pairs from selectHardPairs. */
  posIndex: Int32Array;
  negIndex: Int32Array;
  valid: Float32Array;
}

/** Per-task losses [B]: gamma * L_regress + oeWeight * L_oe. */
export function valueFunctionLoss(
  x: LossInputs,
  gamma = 10,
  oeWeight = 1,
): { total: tf.Tensor1D; regress: tf.Tensor1D; oe: tf.Tensor1D } {
  const [b, t1] = x.out.shape;
  const w = tf.reciprocal(x.std);
  const regress = tf.div(tf.sum(tf.mul(tf.abs(tf.sub(x.out, x.mean)), w), 1), tf.sum(w, 1)) as tf.Tensor1D;
  let oe: tf.Tensor1D;
  if (oeWeight === 0) {
    oe = tf.zerosLike(regress);
  } else {
    // The selected rows as a per-task one-hot [B, T1, T1] times the embeddings: a batched matMul
    // (tf.gather's gradient has no wasm kernel).
    const e3 = tf.reshape(x.embedding, [b, t1, -1]) as tf.Tensor3D;
    const distTo = (idx: Int32Array) => {
      const onehot = new Float32Array(b * t1 * t1);
      for (let r = 0; r < b * t1; r++) onehot[r * t1 + ((idx[r] as number) % t1)] = 1;
      const picked = tf.matMul(tf.tensor3d(onehot, [b, t1, t1]), e3);
      return tf.reshape(tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(e3, picked)), 2), 1e-8)), [-1]);
    };
    const valid = tf.tensor2d(x.valid, [b, t1]);
    const sp = tf.mul(tf.reshape(tf.softplus(tf.sub(distTo(x.posIndex), distTo(x.negIndex))), [b, t1]), valid);
    oe = tf.div(tf.sum(sp, 1), tf.maximum(tf.sum(valid, 1), 1)) as tf.Tensor1D;
  }
  const total = tf.add(tf.mul(regress, gamma), tf.mul(oe, oeWeight)) as tf.Tensor1D;
  return { total, regress, oe };
}

export interface PlainLossInputs {
  /** Tasks in the batch and rows per task. */
  b: number;
  t1: number;
  /** [B * T1] predictions, task-major. */
  out: Float64Array;
  /** [B * T1, E] embeddings. */
  embedding: Float64Array;
  e: number;
  /** [B * T1] targets and stds. */
  mean: Float32Array;
  std: Float32Array;
  /** Hard pairs from selectHardPairs (unused when oeWeight is 0). */
  posIndex: Int32Array;
  negIndex: Int32Array;
  valid: Float32Array;
}

/**
 * A batch taken in chunks of whole tasks: the tasks in the whole batch (the mean's divisor) and
 * the running sums of the task terms, which each chunk's call continues (so the last call
 * returns the batch's loss, summed in the same order as in one call).
 */
export interface LossChunking {
  tasks: number;
  sums: { regress: number; oe: number };
}

/** softplus(z) = log(1 + e^z), without overflow. */
const softplus = (z: number): number => (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));

/**
 * valueFunctionLoss on plain arrays: the batch's mean task loss (and its two terms' means), with
 * its gradient with respect to the predictions written into dOut [B * T1] and, when oeWeight is
 * non-zero, with respect to the embeddings into dEmbedding [B * T1 * E] (both overwritten); or
 * the same for a chunk of the batch's tasks (`batch`: the whole batch's loss after its last chunk). The
 * same formulas as the tfjs version above, which the tests hold it to; |x| has slope -1 at 0 there
 * (tfjs's abs gradient), and here too.
 */
export function valueFunctionLossAndGradient(
  x: PlainLossInputs,
  gamma: number,
  oeWeight: number,
  dOut: Float64Array,
  dEmbedding: Float64Array,
  batch: LossChunking = { tasks: x.b, sums: { regress: 0, oe: 0 } },
): { loss: number; regress: number; oe: number } {
  const { b: chunkTasks, t1, e } = x;
  const nb = batch.tasks;
  let regressSum = batch.sums.regress;
  let oeSum = batch.sums.oe;
  for (let b = 0; b < chunkTasks; b++) {
    const base = b * t1;
    let sw = 0;
    let sr = 0;
    for (let t = 0; t < t1; t++) {
      const w = 1 / (x.std[base + t] as number);
      sw += w;
      sr += Math.abs((x.out[base + t] as number) - (x.mean[base + t] as number)) * w;
    }
    regressSum += sr / sw;
    const c = gamma / nb / sw;
    for (let t = 0; t < t1; t++) {
      const diff = (x.out[base + t] as number) - (x.mean[base + t] as number);
      dOut[base + t] = ((diff > 0 ? 1 : -1) * c) / (x.std[base + t] as number);
    }
  }
  if (oeWeight !== 0) {
    dEmbedding.fill(0, 0, chunkTasks * t1 * e);
    for (let b = 0; b < chunkTasks; b++) {
      const base = b * t1;
      let count = 0;
      for (let t = 0; t < t1; t++) count += x.valid[base + t] as number;
      const denom = Math.max(count, 1);
      let sum = 0;
      for (let t = 0; t < t1; t++) {
        if (x.valid[base + t] !== 1) continue;
        const a = (base + t) * e;
        const p = (x.posIndex[base + t] as number) * e;
        const q = (x.negIndex[base + t] as number) * e;
        let sp2 = 1e-8;
        let sn2 = 1e-8;
        for (let k = 0; k < e; k++) {
          const ea = x.embedding[a + k] as number;
          sp2 += (ea - (x.embedding[p + k] as number)) ** 2;
          sn2 += (ea - (x.embedding[q + k] as number)) ** 2;
        }
        const dp = Math.sqrt(sp2);
        const dn = Math.sqrt(sn2);
        const z = dp - dn;
        sum += softplus(z);
        // d softplus(z) / dz = sigmoid(z); d |a - p| / da = (a - p) / |a - p|.
        const c = (oeWeight / nb / denom) * (1 / (1 + Math.exp(-z)));
        for (let k = 0; k < e; k++) {
          const ea = x.embedding[a + k] as number;
          const gp = (c * (ea - (x.embedding[p + k] as number))) / dp;
          const gn = (c * (ea - (x.embedding[q + k] as number))) / dn;
          dEmbedding[a + k] = (dEmbedding[a + k] as number) + gp - gn;
          dEmbedding[p + k] = (dEmbedding[p + k] as number) - gp;
          dEmbedding[q + k] = (dEmbedding[q + k] as number) + gn;
        }
      }
      oeSum += sum / denom;
    }
  }
  batch.sums.regress = regressSum;
  batch.sums.oe = oeSum;
  const regress = regressSum / nb;
  const oe = oeSum / nb;
  return { loss: gamma * regress + oeWeight * oe, regress, oe };
}
