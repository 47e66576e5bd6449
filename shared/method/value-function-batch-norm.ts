import type { DenseLayer } from '../schemas/checkpoint.js';
import type { TrainLayer } from './value-function-net-layout.js';

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.9;

/** A BatchNorm layer's parameters and running statistics (inference mode). */
export interface BatchNormState {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
}

/**
 * A checkpoint layer from trained float32 weights [in][out] and bias, with BatchNorm (when the
 * layer has it) folded in: w' = w * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps).
 * Both training engines write their checkpoints through this, so their formats are the same.
 * The arrays w and b are modified.
 */
export function checkpointLayer(
  nin: number,
  nout: number,
  w: Float32Array,
  b: Float32Array,
  bn: BatchNormState | undefined,
): DenseLayer {
  if (bn) {
    for (let j = 0; j < nout; j++) {
      const s = (bn.gamma[j] as number) / Math.sqrt((bn.variance[j] as number) + BN_EPS);
      b[j] = ((b[j] as number) - (bn.mean[j] as number)) * s + (bn.beta[j] as number);
      for (let r = 0; r < nin; r++) w[r * nout + j] = (w[r * nout + j] as number) * s;
    }
  }
  return { in: nin, out: nout, weights: Array.from(w), bias: Array.from(b) };
}

/** A training-net layer's BatchNorm parameters and running statistics (undefined without BatchNorm). */
export function batchNormState(l: TrainLayer): BatchNormState | undefined {
  return l.gamma && l.beta && l.runningMean && l.runningVar
    ? { gamma: l.gamma, beta: l.beta, mean: l.runningMean, variance: l.runningVar }
    : undefined;
}

// BatchNorm of the f32 training net (value-function-net-f32.ts) in plain TypeScript, on the
// layer's rows in the kernel memory f (float32 view): the same formulas as the tfjs net's.

/** BatchNorm with the batch's (biased) statistics: pre becomes zhat = (z - mean) / sqrt(var + eps), act = ReLU(gamma zhat + beta). */
export function batchNormForward(f: Float32Array, l: TrainLayer, rows: number): void {
  const { nout, pout, gamma, beta } = l;
  if (!gamma || !beta) return;
  const z = l.pre / 4;
  const act = l.act / 4;
  l.batchMean.fill(0);
  l.batchVar.fill(0);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < nout; j++) l.batchMean[j] = (l.batchMean[j] as number) + (f[z + r * pout + j] as number);
  for (let j = 0; j < nout; j++) l.batchMean[j] = (l.batchMean[j] as number) / rows;
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < nout; j++)
      l.batchVar[j] = (l.batchVar[j] as number) + ((f[z + r * pout + j] as number) - (l.batchMean[j] as number)) ** 2;
  for (let j = 0; j < nout; j++) {
    l.batchVar[j] = (l.batchVar[j] as number) / rows;
    l.invStd[j] = 1 / Math.sqrt((l.batchVar[j] as number) + BN_EPS);
  }
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < nout; j++) {
      const k = r * pout + j;
      const zhat = ((f[z + k] as number) - (l.batchMean[j] as number)) * (l.invStd[j] as number);
      f[z + k] = zhat;
      f[act + k] = Math.max(zhat * (gamma[j] as number) + (beta[j] as number), 0);
    }
  }
}

/**
 * Takes g (d loss / d activations of hidden layer l, at byte offset `grad`, rows of l.pout)
 * back through its ReLU and its BatchNorm (batch statistics), in place:
 * dz = gamma / sigma * (dy - mean(dy) - zhat * mean(dy * zhat)), dgamma = sum dy zhat, dbeta = sum dy.
 */
export function throughBatchNorm(f: Float32Array, l: TrainLayer, rows: number, grad: number): void {
  const { nout: n, pout } = l;
  if (!l.gamma || !l.gGamma || !l.gBeta) return;
  const g = grad / 4;
  const act = l.act / 4;
  const pre = l.pre / 4;
  const sumDy = new Float64Array(n);
  const sumDyZ = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      const k = r * pout + j;
      if ((f[act + k] as number) <= 0) f[g + k] = 0;
      sumDy[j] = (sumDy[j] as number) + (f[g + k] as number);
      sumDyZ[j] = (sumDyZ[j] as number) + (f[g + k] as number) * (f[pre + k] as number);
    }
  }
  for (let j = 0; j < n; j++) {
    l.gBeta[j] = sumDy[j] as number;
    l.gGamma[j] = sumDyZ[j] as number;
  }
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      const k = r * pout + j;
      const s = (l.gamma[j] as number) * (l.invStd[j] as number);
      f[g + k] =
        s *
        ((f[g + k] as number) - (sumDy[j] as number) / rows - ((f[pre + k] as number) * (sumDyZ[j] as number)) / rows);
    }
  }
}

/** Folds the last batch's statistics into the layer's running averages (as the tfjs net does). */
export function updateRunningStats(l: TrainLayer): void {
  const rm = l.runningMean;
  const rv = l.runningVar;
  if (!rm || !rv) return;
  for (let j = 0; j < l.nout; j++) {
    rm[j] = BN_MOMENTUM * (rm[j] as number) + (1 - BN_MOMENTUM) * (l.batchMean[j] as number);
    rv[j] = BN_MOMENTUM * (rv[j] as number) + (1 - BN_MOMENTUM) * (l.batchVar[j] as number);
  }
}
