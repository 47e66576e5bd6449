import * as tf from '@tensorflow/tfjs';
import type { DenseLayer } from '../schemas/checkpoint.js';
import { Rng } from '../util/random.js';
import { BN_EPS, BN_MOMENTUM, checkpointLayer } from './value-function-batch-norm.js';
import type { ValueFunctionArch } from './value-function-net-layout.js';

/**
 * The value function f(phi) (Stage 3) on tfjs: an MLP d-64-32-32-16-1, ReLU on hidden layers,
 * optional BatchNorm (the paper's recipe), the last hidden activation being the embedding g(phi).
 * Training runs on `ValueFunctionNetF32` by default; this is the reference it is tested against
 * (and the engine `engine: 'tfjs'` selects).
 */
export type { ValueFunctionArch };

export const defaultHidden = [64, 32, 32, 16];

export class ValueFunctionNet {
  readonly weights: tf.Variable[] = [];
  readonly biases: tf.Variable[] = [];
  readonly gammas: tf.Variable[] = [];
  readonly betas: tf.Variable[] = [];
  readonly runningMean: Float32Array[] = [];
  readonly runningVar: Float32Array[] = [];
  private readonly widths: number[];

  constructor(
    readonly arch: ValueFunctionArch,
    seed: number,
  ) {
    const rng = new Rng(seed);
    this.widths = [arch.d, ...arch.hidden, 1];
    for (let i = 0; i < this.widths.length - 1; i++) {
      const nin = this.widths[i] as number;
      const nout = this.widths[i + 1] as number;
      // He initialisation for ReLU layers.
      const std = Math.sqrt(2 / nin);
      this.weights.push(tf.tidy(() => tf.variable(tf.tensor2d(rng.normals(nin * nout, std), [nin, nout]))));
      this.biases.push(tf.tidy(() => tf.variable(tf.zeros([nout]))));
      if (arch.batchNorm && i < this.widths.length - 2) {
        this.gammas.push(tf.tidy(() => tf.variable(tf.ones([nout]))));
        this.betas.push(tf.tidy(() => tf.variable(tf.zeros([nout]))));
        this.runningMean.push(new Float32Array(nout));
        this.runningVar.push(new Float32Array(nout).fill(1));
      }
    }
  }

  get variables(): tf.Variable[] {
    return [...this.weights, ...this.biases, ...this.gammas, ...this.betas];
  }

  /**
   * Output [n] and embedding [n, last hidden]. In training mode BatchNorm uses the batch's
   * statistics and returns them in `stats` (mean, variance per BN layer) for running averages.
   */
  forward(x: tf.Tensor2D, training = false, stats?: tf.Tensor[]): { out: tf.Tensor1D; embedding: tf.Tensor2D } {
    let h: tf.Tensor2D = x;
    let embedding: tf.Tensor2D = x;
    const last = this.widths.length - 2;
    for (let i = 0; i <= last; i++) {
      let z = tf.add(tf.matMul(h, this.weights[i] as tf.Variable), this.biases[i] as tf.Variable) as tf.Tensor2D;
      if (i < last) {
        if (this.arch.batchNorm) {
          let mean: tf.Tensor;
          let variance: tf.Tensor;
          if (training) {
            const m = tf.moments(z, 0);
            mean = m.mean;
            variance = m.variance;
            stats?.push(tf.keep(mean.clone()), tf.keep(variance.clone()));
          } else {
            mean = tf.tensor1d(this.runningMean[i] as Float32Array);
            variance = tf.tensor1d(this.runningVar[i] as Float32Array);
          }
          z = tf.add(
            tf.mul(tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, BN_EPS))), this.gammas[i] as tf.Variable),
            this.betas[i] as tf.Variable,
          ) as tf.Tensor2D;
        }
        h = tf.relu(z);
        embedding = h;
      } else {
        h = z;
      }
    }
    return { out: tf.reshape(h, [-1]) as tf.Tensor1D, embedding };
  }

  /** Folds a batch's BatchNorm statistics (from forward(..., true, stats)) into the running averages. */
  updateRunningStats(stats: tf.Tensor[]): void {
    for (let i = 0; i < stats.length / 2; i++) {
      const m = (stats[2 * i] as tf.Tensor).dataSync();
      const v = (stats[2 * i + 1] as tf.Tensor).dataSync();
      const rm = this.runningMean[i] as Float32Array;
      const rv = this.runningVar[i] as Float32Array;
      for (let j = 0; j < rm.length; j++) {
        rm[j] = BN_MOMENTUM * (rm[j] as number) + (1 - BN_MOMENTUM) * (m[j] as number);
        rv[j] = BN_MOMENTUM * (rv[j] as number) + (1 - BN_MOMENTUM) * (v[j] as number);
      }
    }
    for (const s of stats) s.dispose();
  }

  /** All trainable values as flat arrays (for Reptile's interpolation). */
  snapshot(): Float32Array[] {
    return this.variables.map((v) => Float32Array.from(v.dataSync()));
  }

  restore(values: Float32Array[]): void {
    tf.tidy(() => {
      this.variables.forEach((v, i) => {
        v.assign(tf.tensor(values[i] as Float32Array, v.shape));
      });
    });
  }

  /** Inference layers with BatchNorm folded in, for the checkpoint. */
  toLayers(): DenseLayer[] {
    const last = this.widths.length - 2;
    return this.weights.map((w, i) =>
      checkpointLayer(
        this.widths[i] as number,
        this.widths[i + 1] as number,
        Float32Array.from(w.dataSync()),
        Float32Array.from((this.biases[i] as tf.Variable).dataSync()),
        this.arch.batchNorm && i < last
          ? {
              gamma: (this.gammas[i] as tf.Variable).dataSync() as Float32Array,
              beta: (this.betas[i] as tf.Variable).dataSync() as Float32Array,
              mean: this.runningMean[i] as Float32Array,
              variance: this.runningVar[i] as Float32Array,
            }
          : undefined,
      ),
    );
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}
