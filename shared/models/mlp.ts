import * as tf from '@tensorflow/tfjs';
import { type SparseDataset, toDense } from '../data/dataset.js';
import { BalancedSampler } from '../data/sampler.js';
import type { ProgressReporter } from '../ports/progress.port.js';
import { Rng } from '../util/random.js';
import { ModelError } from './errors.js';
import { contextLogitColumns } from './low-rank-logit.js';

/** The paper's MLP (A9A: 123-100-30-10-1, LeakyReLU, BatchNorm and dropout on each hidden layer). */
export interface MlpConfig {
  hidden: number[];
  leakyAlpha: number;
  dropout: number;
  batchNorm: boolean;
  /**
   * Adapter: input dynamic biases of dimension d (plus, with outputBias, one dynamic bias per
   * output logit as the last entries of phi), or FiLM on hidden layer `layer` (d = 2 x width).
   */
  adapter:
    | {
        kind: 'input-bias';
        d: number;
        outputBias?: boolean;
        /** Rank of the low-rank input-to-logit term (binary tasks; shared/models/low-rank-logit.ts); 0 or absent = none. */
        logitRank?: number;
        /** `context`: the term reads the data set's context columns (one weight each), not random projections. */
        logitFeatures?: 'random' | 'context';
      }
    | { kind: 'film'; layer: number };
}

export interface PretrainConfig {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
}

export const defaultMlpConfig: MlpConfig = {
  hidden: [100, 30, 10],
  leakyAlpha: 0.1,
  dropout: 0.1,
  batchNorm: true,
  adapter: { kind: 'input-bias', d: 16 },
};

export const defaultPretrainConfig: PretrainConfig = { epochs: 6, batchSize: 256, learningRate: 1e-3, seed: 1 };

/** Inference-time weights of a trained MLP: BatchNorm folded into each layer, dropout gone. */
export interface FrozenMlp {
  inputs: number;
  classes: number;
  leakyAlpha: number;
  /** layers[i]: weights row-major [in][out] and bias; the last layer is the output (linear). */
  layers: { in: number; out: number; w: Float32Array; b: Float32Array }[];
  /**
   * input-bias: d = a's rows + logitRank + outputBias; phi = [input biases | u (logitRank) |
   * output biases]: u weights the low-rank input-to-logit term, the last `outputBias` entries
   * shift the logits. With `logitColumns` the term reads those context columns (logitRank of them).
   */
  adapter:
    | {
        kind: 'input-bias';
        d: number;
        a: Float32Array;
        outputBias: number;
        logitRank?: number;
        logitColumns?: string[];
      }
    | { kind: 'film'; layer: number; d: number };
}

/**
 * Logit units per unit of an output dynamic bias: phi ~ N(0, 1) then spans the prior shifts of
 * the bundled data sets (a9a's natural prior is 1.15 logits from the balanced one, w8a's 3.5).
 */
export const OUTPUT_BIAS_SCALE = 2;

function glorot(rng: Rng, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return Float32Array.from({ length: fanIn * fanOut }, () => (rng.next() * 2 - 1) * limit);
}

/**
 * Cross-entropy pre-training with class-balanced mini-batches (the paper's protocol), phi = 0.
 * The input-bias adapter matrix A is a fixed random projection at this stage (phi = 0 gives it
 * no gradient); it becomes part of the frozen theta.
 */
export async function pretrainMlp(
  ds: SparseDataset,
  trainRows: Int32Array,
  config: MlpConfig,
  train: PretrainConfig,
  progress: ProgressReporter,
): Promise<FrozenMlp> {
  // A user mistake is said before the minutes of pre-training, not after them.
  if (config.adapter.kind === 'input-bias' && config.adapter.logitFeatures === 'context') contextLogitColumns(ds);
  const rng = new Rng(train.seed);
  const outUnits = ds.classes === 2 ? 1 : ds.classes;
  const widths = [ds.features, ...config.hidden, outUnits];
  const W: tf.Variable[] = [];
  const B: tf.Variable[] = [];
  const gamma: tf.Variable[] = [];
  const beta: tf.Variable[] = [];
  const runMean: Float32Array[] = [];
  const runVar: Float32Array[] = [];
  for (let i = 0; i < widths.length - 1; i++) {
    const nin = widths[i] as number;
    const nout = widths[i + 1] as number;
    W.push(tf.tidy(() => tf.variable(tf.tensor2d(glorot(rng, nin, nout), [nin, nout]))));
    B.push(tf.tidy(() => tf.variable(tf.zeros([nout]))));
    if (i < widths.length - 2) {
      gamma.push(tf.tidy(() => tf.variable(tf.ones([nout]))));
      beta.push(tf.tidy(() => tf.variable(tf.zeros([nout]))));
      runMean.push(new Float32Array(nout));
      runVar.push(new Float32Array(nout).fill(1));
    }
  }
  const hiddenCount = widths.length - 2;
  const optimizer = tf.train.adam(train.learningRate);
  const sampler = new BalancedSampler(trainRows, ds.labels, ds.classes);
  const stepsPerEpoch = Math.max(1, Math.ceil(trainRows.length / train.batchSize));
  const total = train.epochs * stepsPerEpoch;
  const momentum = 0.99;
  const eps = 1e-5;
  progress.start('pre-train (cross-entropy)', total);
  let step = 0;
  for (let epoch = 0; epoch < train.epochs; epoch++) {
    for (let s = 0; s < stepsPerEpoch; s++) {
      const idx = sampler.sample(rng, train.batchSize);
      const dropSeed = rng.int(2 ** 31);
      const moments: { mean: Float32Array; variance: Float32Array }[] = [];
      const labelData = Int32Array.from(idx, (r) => ds.labels[r] as number);
      const lossValue = tf.tidy(() => {
        // The batch's rows made dense here (not a dense copy of the whole data set, gathered:
        // that held rows x features floats twice, in JS and in the tfjs heap, which never shrinks).
        const x = tf.tensor2d(toDense(ds, idx), [idx.length, ds.features]);
        const y = tf.tensor1d(labelData, 'int32');
        const stats: tf.Tensor[] = [];
        const cost = optimizer.minimize(() => {
          let h: tf.Tensor2D = x;
          for (let i = 0; i < widths.length - 1; i++) {
            let z = tf.add(tf.matMul(h, W[i] as tf.Variable), B[i] as tf.Variable) as tf.Tensor2D;
            if (i < hiddenCount) {
              if (config.batchNorm) {
                const m = tf.moments(z, 0);
                stats.push(tf.keep(m.mean.clone()), tf.keep(m.variance.clone()));
                z = tf.add(
                  tf.mul(tf.div(tf.sub(z, m.mean), tf.sqrt(tf.add(m.variance, eps))), gamma[i] as tf.Variable),
                  beta[i] as tf.Variable,
                ) as tf.Tensor2D;
              }
              h = tf.leakyRelu(z, config.leakyAlpha) as tf.Tensor2D;
              if (config.dropout > 0) h = tf.dropout(h, config.dropout, undefined, dropSeed + i) as tf.Tensor2D;
            } else {
              h = z;
            }
          }
          return crossEntropy(h, y, ds.classes);
        }, true);
        const out = (cost as tf.Scalar).dataSync()[0] as number;
        for (let i = 0; i < stats.length; i += 2) {
          moments.push({
            mean: (stats[i] as tf.Tensor).dataSync() as Float32Array,
            variance: (stats[i + 1] as tf.Tensor).dataSync() as Float32Array,
          });
          (stats[i] as tf.Tensor).dispose();
          (stats[i + 1] as tf.Tensor).dispose();
        }
        return out;
      });
      moments.forEach((m, i) => {
        const rm = runMean[i] as Float32Array;
        const rv = runVar[i] as Float32Array;
        for (let j = 0; j < rm.length; j++) {
          rm[j] = momentum * (rm[j] as number) + (1 - momentum) * (m.mean[j] as number);
          rv[j] = momentum * (rv[j] as number) + (1 - momentum) * (m.variance[j] as number);
        }
      });
      step++;
      if (step % 20 === 0 || step === total) progress.tick(step, `loss ${lossValue.toFixed(4)}`);
    }
  }
  progress.end();
  optimizer.dispose();

  // Fold BatchNorm (inference statistics) into each hidden layer.
  const layers: FrozenMlp['layers'] = [];
  const scales: Float32Array[] = [];
  for (let i = 0; i < widths.length - 1; i++) {
    const nin = widths[i] as number;
    const nout = widths[i + 1] as number;
    const w = (W[i] as tf.Variable).dataSync() as Float32Array;
    const b = Float32Array.from((B[i] as tf.Variable).dataSync());
    const wf = Float32Array.from(w);
    const scale = new Float32Array(nout).fill(1);
    if (i < hiddenCount && config.batchNorm) {
      const g = (gamma[i] as tf.Variable).dataSync();
      const be = (beta[i] as tf.Variable).dataSync();
      const rm = runMean[i] as Float32Array;
      const rv = runVar[i] as Float32Array;
      for (let j = 0; j < nout; j++) {
        scale[j] = (g[j] as number) / Math.sqrt((rv[j] as number) + eps);
        b[j] = ((b[j] as number) - (rm[j] as number)) * (scale[j] as number) + (be[j] as number);
      }
      for (let r = 0; r < nin; r++)
        for (let j = 0; j < nout; j++) wf[r * nout + j] = (wf[r * nout + j] as number) * (scale[j] as number);
    }
    scales.push(scale);
    layers.push({ in: nin, out: nout, w: wf, b });
  }
  for (const v of [...W, ...B, ...gamma, ...beta]) v.dispose();

  let adapter: FrozenMlp['adapter'];
  if (config.adapter.kind === 'input-bias') {
    const d = config.adapter.d;
    const h1 = widths[1] as number;
    // A: a fixed random projection of phi onto the first pre-activation, scaled like an input
    // feature column so that phi ~ N(0, 1) moves the network about as much as an input does.
    const a = glorot(rng, d, h1);
    const s1 = scales[0] as Float32Array;
    for (let r = 0; r < d; r++)
      for (let j = 0; j < h1; j++) a[r * h1 + j] = (a[r * h1 + j] as number) * (s1[j] as number);
    const outputBias = config.adapter.outputBias ? outUnits : 0;
    const columns = config.adapter.logitFeatures === 'context' ? contextLogitColumns(ds) : undefined;
    const rank = columns ? columns.length : (config.adapter.logitRank ?? 0);
    if (rank > 0 && ds.classes !== 2) {
      throw new ModelError(
        'LOW_RANK_BINARY_ONLY',
        `the low-rank logit adapter is for binary tasks; this one has ${ds.classes} classes`,
        {
          classes: ds.classes,
        },
      );
    }
    adapter =
      rank > 0
        ? {
            kind: 'input-bias',
            d: d + rank + outputBias,
            a,
            outputBias,
            logitRank: rank,
            ...(columns ? { logitColumns: columns } : {}),
          }
        : { kind: 'input-bias', d: d + outputBias, a, outputBias };
  } else {
    const layer = config.adapter.layer;
    if (!Number.isInteger(layer) || layer < 0 || layer >= hiddenCount) throw filmLayerOutOfRange(layer, hiddenCount);
    adapter = { kind: 'film', layer, d: 2 * (widths[layer + 1] as number) };
  }
  return { inputs: ds.features, classes: ds.classes, leakyAlpha: config.leakyAlpha, layers, adapter };
}

/** Mean cross-entropy of logits ([n, 1] binary or [n, C]) against integer labels. */
export function crossEntropy(logits: tf.Tensor, labels: tf.Tensor1D, classes: number): tf.Scalar {
  return tf.tidy(() => {
    if (classes === 2) {
      const z = tf.reshape(logits, [-1]);
      return tf.mean(sigmoidCe(z, labels)) as tf.Scalar;
    }
    return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, classes), logits as tf.Tensor2D) as tf.Scalar;
  });
}

/** Numerically stable binary cross-entropy with logits: max(z, 0) - z y + log(1 + exp(-|z|)). */
export function sigmoidCe(z: tf.Tensor, labels: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const y = tf.cast(labels, 'float32');
    return tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z)))));
  });
}

/** The FiLM layer is one of the backbone's hidden layers: 0 .. hiddenCount - 1. */
export function filmLayerOutOfRange(layer: number, hiddenCount: number): ModelError {
  return new ModelError(
    'FILM_LAYER_OUT_OF_RANGE',
    `--film-layer ${layer} is not a hidden layer of the backbone (it has ${hiddenCount}: 0..${hiddenCount - 1})`,
    { layer, hiddenCount },
  );
}
