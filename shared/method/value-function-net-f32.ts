import type { DenseLayer } from '../schemas/checkpoint.js';
import { Rng } from '../util/random.js';
import { denseBackward, denseForward, denseParamGradients } from './dense-kernels.js';
import { type FisherMasks, selectHardPairs, valueFunctionLossAndGradient } from './value-function-loss.js';

/**
 * The value function's MLP (d-64-32-32-16-1, ReLU on hidden layers, optional BatchNorm, the
 * last hidden activation being the embedding g(phi)).
 */
export interface ValueFunctionArch {
  d: number;
  hidden: number[];
  batchNorm: boolean;
}

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

interface Layer {
  nin: number;
  nout: number;
  /** Views into the net's flat parameter and gradient vectors: weights [out][in], bias. */
  wT: Float32Array;
  b: Float32Array;
  gWT: Float32Array;
  gB: Float32Array;
  /** BatchNorm scale and shift (hidden layers of a BatchNorm net) and their gradients. */
  gamma: Float32Array | undefined;
  beta: Float32Array | undefined;
  gGamma: Float32Array | undefined;
  gBeta: Float32Array | undefined;
  runningMean: Float32Array | undefined;
  runningVar: Float32Array | undefined;
  /** Float64 copies of wT and b for the kernels (the float32 values exactly). */
  wT64: Float64Array;
  b64: Float64Array;
  /** Float64 gradient accumulators. */
  gWT64: Float64Array;
  gB64: Float64Array;
  /** Per row: pre-activations (BatchNorm: normalised, zhat), activations, gradient buffer. */
  pre: Float64Array;
  act: Float64Array;
  grad: Float64Array;
  /** BatchNorm: the batch's mean, variance and 1 / sqrt(variance + eps) per unit. */
  batchMean: Float64Array;
  batchVar: Float64Array;
  invStd: Float64Array;
}

/**
 * The value function's training net on plain typed arrays: forward, backward and the loss
 * (valueFunctionLossAndGradient) over a batch, with the dense-layer kernels serving uses
 * (dense-kernels.ts). The reference implementation is the tfjs `ValueFunctionNet`: the same
 * initial weights from the same seed, the same BatchNorm (batch statistics while training,
 * running averages folded into the checkpoint), the same checkpoint layers.
 *
 * All trainable values live in one flat float32 vector `params` (gradients in `grads`, the same
 * layout), so the optimisers and Reptile's interpolation work on it whole; after changing
 * `params`, call `paramsChanged()`.
 */
export class ValueFunctionNetF32 {
  readonly params: Float32Array;
  readonly grads: Float32Array;
  private readonly layers: Layer[];
  private readonly widths: number[];
  private rows = 0;
  private x = new Float64Array(0);
  private dOut = new Float64Array(0);
  private dEmbedding = new Float64Array(0);

  constructor(
    readonly arch: ValueFunctionArch,
    seed: number,
  ) {
    const widths = [arch.d, ...arch.hidden, 1];
    this.widths = widths;
    const last = widths.length - 2;
    const bn = (i: number) => arch.batchNorm && i < last;
    let size = 0;
    for (let i = 0; i <= last; i++) {
      const nout = widths[i + 1] as number;
      size += (widths[i] as number) * nout + nout + (bn(i) ? 2 * nout : 0);
    }
    this.params = new Float32Array(size);
    this.grads = new Float32Array(size);
    let at = 0;
    const take = (n: number): [Float32Array, Float32Array] => {
      const views: [Float32Array, Float32Array] = [this.params.subarray(at, at + n), this.grads.subarray(at, at + n)];
      at += n;
      return views;
    };
    // He initialisation, drawn in the tfjs net's order ([in][out] per layer) from the same seed.
    const rng = new Rng(seed);
    this.layers = [];
    for (let i = 0; i <= last; i++) {
      const nin = widths[i] as number;
      const nout = widths[i + 1] as number;
      const [wT, gWT] = take(nin * nout);
      const [b, gB] = take(nout);
      const [gamma, gGamma] = bn(i) ? take(nout) : [undefined, undefined];
      const [beta, gBeta] = bn(i) ? take(nout) : [undefined, undefined];
      gamma?.fill(1);
      const w = rng.normals(nin * nout, Math.sqrt(2 / nin));
      for (let r = 0; r < nin; r++) for (let j = 0; j < nout; j++) wT[j * nin + r] = w[r * nout + j] as number;
      this.layers.push({
        nin,
        nout,
        wT,
        b,
        gWT,
        gB,
        gamma,
        beta,
        gGamma,
        gBeta,
        runningMean: bn(i) ? new Float32Array(nout) : undefined,
        runningVar: bn(i) ? new Float32Array(nout).fill(1) : undefined,
        wT64: new Float64Array(nin * nout),
        b64: new Float64Array(nout),
        gWT64: new Float64Array(nin * nout),
        gB64: new Float64Array(nout),
        pre: new Float64Array(0),
        act: new Float64Array(0),
        grad: new Float64Array(0),
        batchMean: new Float64Array(nout),
        batchVar: new Float64Array(nout),
        invStd: new Float64Array(nout),
      });
    }
    this.paramsChanged();
  }

  /** Refreshes the kernels' float64 copies after `params` changed. */
  paramsChanged(): void {
    for (const l of this.layers) {
      l.wT64.set(l.wT);
      l.b64.set(l.b);
    }
  }

  /**
   * A vector in `params`' layout (params itself, or grads) split as the tfjs net's variables:
   * weights [in][out] of every layer, then biases, then BatchNorm gammas, then betas.
   */
  inTfjsLayout(vector: Float32Array): Float32Array[] {
    const view = (part: Float32Array) => vector.subarray(part.byteOffset / 4, part.byteOffset / 4 + part.length);
    const weights = this.layers.map((l) => {
      const wT = view(l.wT);
      const w = new Float32Array(l.nin * l.nout);
      for (let r = 0; r < l.nin; r++) for (let j = 0; j < l.nout; j++) w[r * l.nout + j] = wT[j * l.nin + r] as number;
      return w;
    });
    const parts = (pick: (l: Layer) => Float32Array | undefined) =>
      this.layers.flatMap((l) => {
        const p = pick(l);
        return p ? [view(p).slice()] : [];
      });
    return [...weights, ...parts((l) => l.b), ...parts((l) => l.gamma), ...parts((l) => l.beta)];
  }

  /** Running BatchNorm statistics of hidden layer i (undefined without BatchNorm). */
  runningStats(i: number): { mean: Float32Array; variance: Float32Array } | undefined {
    const l = this.layers[i] as Layer;
    return l.runningMean && l.runningVar ? { mean: l.runningMean, variance: l.runningVar } : undefined;
  }

  /**
   * The batch's mean task loss (paper Eq. 2 with the ordinal-embedding term at oeWeight, hard
   * pairs mined on this forward pass's embeddings) and its gradient in `grads`. BatchNorm uses
   * the batch's statistics; `updateRunningStats` folds them into the running averages.
   */
  lossAndGradient(batch: PackedBatch, gamma: number, oeWeight: number): number {
    const rows = batch.B * batch.T1;
    this.ensureRows(rows);
    const x = this.x;
    for (let i = 0; i < rows * this.arch.d; i++) x[i] = batch.x[i] as number;
    this.forward(rows);
    const embedLayer = this.layers[this.layers.length - 2];
    const e = embedLayer ? embedLayer.nout : this.arch.d;
    const embedding = embedLayer ? embedLayer.act : x;
    // Hard mining on the current embeddings (the selection carries no gradient).
    const pairs =
      oeWeight === 0
        ? { posIndex: new Int32Array(0), negIndex: new Int32Array(0), valid: new Float32Array(0) }
        : selectHardPairs(Float32Array.from(embedding.subarray(0, rows * e)), e, batch.masks, batch.T1);
    const { loss } = valueFunctionLossAndGradient(
      {
        b: batch.B,
        t1: batch.T1,
        out: (this.layers[this.layers.length - 1] as Layer).act,
        embedding,
        e,
        mean: batch.mean,
        std: batch.std,
        ...pairs,
      },
      gamma,
      oeWeight,
      this.dOut,
      this.dEmbedding,
    );
    this.backward(rows, oeWeight !== 0);
    return loss;
  }

  /** Folds the last batch's BatchNorm statistics into the running averages (as the tfjs net does). */
  updateRunningStats(): void {
    for (const l of this.layers) {
      const rm = l.runningMean;
      const rv = l.runningVar;
      if (!rm || !rv) continue;
      for (let j = 0; j < l.nout; j++) {
        rm[j] = BN_MOMENTUM * (rm[j] as number) + (1 - BN_MOMENTUM) * (l.batchMean[j] as number);
        rv[j] = BN_MOMENTUM * (rv[j] as number) + (1 - BN_MOMENTUM) * (l.batchVar[j] as number);
      }
    }
  }

  /** Inference layers with BatchNorm folded in, for the checkpoint. */
  toLayers(): DenseLayer[] {
    const weights = this.inTfjsLayout(this.params);
    return this.layers.map((l, i) =>
      checkpointLayer(
        l.nin,
        l.nout,
        weights[i] as Float32Array,
        Float32Array.from(l.b),
        l.gamma && l.beta && l.runningMean && l.runningVar
          ? { gamma: l.gamma, beta: l.beta, mean: l.runningMean, variance: l.runningVar }
          : undefined,
      ),
    );
  }

  private ensureRows(rows: number): void {
    if (rows <= this.rows) return;
    this.rows = rows;
    this.x = new Float64Array(rows * this.arch.d);
    this.dOut = new Float64Array(rows);
    this.dEmbedding = new Float64Array(rows * (this.widths[this.widths.length - 2] as number));
    for (const l of this.layers) {
      l.pre = new Float64Array(rows * l.nout);
      l.act = new Float64Array(rows * l.nout);
      l.grad = new Float64Array(rows * Math.max(l.nin, l.nout));
    }
  }

  /** Training-mode forward over the first `rows` rows of this.x. */
  private forward(rows: number): void {
    let input: Float64Array = this.x;
    const last = this.layers.length - 1;
    for (const [li, l] of this.layers.entries()) {
      const { nout } = l;
      if (li === last) {
        denseForward(input, l.wT64, l.b64, l.nin, nout, rows, false, l.act);
        break;
      }
      if (!l.gamma || !l.beta) {
        denseForward(input, l.wT64, l.b64, l.nin, nout, rows, true, l.act);
        input = l.act;
        continue;
      }
      // BatchNorm with the batch's (biased) statistics: pre holds zhat = (z - mean) / sqrt(var + eps).
      const z = l.pre;
      denseForward(input, l.wT64, l.b64, l.nin, nout, rows, false, z);
      l.batchMean.fill(0);
      l.batchVar.fill(0);
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < nout; j++) l.batchMean[j] = (l.batchMean[j] as number) + (z[r * nout + j] as number);
      for (let j = 0; j < nout; j++) l.batchMean[j] = (l.batchMean[j] as number) / rows;
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < nout; j++)
          l.batchVar[j] = (l.batchVar[j] as number) + ((z[r * nout + j] as number) - (l.batchMean[j] as number)) ** 2;
      for (let j = 0; j < nout; j++) {
        l.batchVar[j] = (l.batchVar[j] as number) / rows;
        l.invStd[j] = 1 / Math.sqrt((l.batchVar[j] as number) + BN_EPS);
      }
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < nout; j++) {
          const k = r * nout + j;
          const zhat = ((z[k] as number) - (l.batchMean[j] as number)) * (l.invStd[j] as number);
          z[k] = zhat;
          const y = zhat * (l.gamma[j] as number) + (l.beta[j] as number);
          l.act[k] = Math.max(y, 0);
        }
      }
      input = l.act;
    }
  }

  /** Gradients of the last loss into `grads`, from dOut (and dEmbedding when withEmbedding). */
  private backward(rows: number, withEmbedding: boolean): void {
    const last = this.layers.length - 1;
    // up: the gradient with respect to the current layer's pre-activations (the linear output
    // first), or, with `active`, with respect to its ReLU outputs, counting only where active > 0
    // (the kernels apply the ReLU as they list the non-zeros: no separate masking pass).
    let up: Float64Array = this.dOut;
    let active: Float64Array | undefined;
    for (let li = last; li >= 0; li--) {
      const l = this.layers[li] as Layer;
      const input = li === 0 ? this.x : (this.layers[li - 1] as Layer).act;
      l.gWT64.fill(0);
      l.gB64.fill(0);
      denseParamGradients(input, up, active, l.nin, l.nout, rows, l.gWT64, l.gB64);
      if (li > 0) {
        const below = this.layers[li - 1] as Layer;
        const g = below.grad;
        // d loss / d (activations of the layer below), plus the embedding term's gradient there.
        denseBackward(up, active, l.wT64, l.nin, l.nout, rows, undefined, g);
        if (withEmbedding && li === last)
          for (let k = 0; k < rows * l.nin; k++) g[k] = (g[k] as number) + (this.dEmbedding[k] as number);
        if (below.gamma) {
          this.throughBatchNorm(below, rows, g);
          active = undefined;
        } else {
          active = below.act;
        }
        up = g;
      }
    }
    for (const l of this.layers) {
      l.gWT.set(l.gWT64);
      l.gB.set(l.gB64);
    }
  }

  /**
   * Takes g (d loss / d activations of hidden layer l) back through its ReLU and its BatchNorm
   * (batch statistics), in place:
   * dz = gamma / sigma * (dy - mean(dy) - zhat * mean(dy * zhat)), dgamma = sum dy zhat, dbeta = sum dy.
   */
  private throughBatchNorm(l: Layer, rows: number, g: Float64Array): void {
    const n = l.nout;
    for (let k = 0; k < rows * n; k++) if ((l.act[k] as number) <= 0) g[k] = 0;
    if (!l.gamma || !l.gGamma || !l.gBeta) return;
    const sumDy = new Float64Array(n);
    const sumDyZ = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        const k = r * n + j;
        sumDy[j] = (sumDy[j] as number) + (g[k] as number);
        sumDyZ[j] = (sumDyZ[j] as number) + (g[k] as number) * (l.pre[k] as number);
      }
    }
    for (let j = 0; j < n; j++) {
      l.gBeta[j] = sumDy[j] as number;
      l.gGamma[j] = sumDyZ[j] as number;
    }
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        const k = r * n + j;
        const s = ((l.gamma[j] as number) * (l.invStd[j] as number)) as number;
        g[k] =
          s * ((g[k] as number) - (sumDy[j] as number) / rows - ((l.pre[k] as number) * (sumDyZ[j] as number)) / rows);
      }
    }
  }
}
