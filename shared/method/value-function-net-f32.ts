import type { DenseLayer } from '../schemas/checkpoint.js';
import { Rng } from '../util/random.js';
import { simdKernels, type WasmModule, wasmApi } from './value-function-f32.js';
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
  /** Row widths in the kernel memory: nin and nout padded with zeros to a multiple of 8 floats. */
  pin: number;
  pout: number;
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
  /** BatchNorm: the batch's mean, variance and 1 / sqrt(variance + eps) per unit. */
  batchMean: Float64Array;
  batchVar: Float64Array;
  invStd: Float64Array;
  /**
   * Byte offsets in the kernel memory. Fixed: weights [pin][pout] (forward) and [pout][pin]
   * (back to the input), bias, the weight and bias gradients. Per row (placed by ensureRows):
   * pre-activations (BatchNorm: normalised, zhat), activations, and the gradient with respect
   * to this layer's input (rows x pin; layers above the first).
   */
  w: number;
  wBack: number;
  bias: number;
  gW: number;
  gBias: number;
  pre: number;
  act: number;
  grad: number;
}

/** The exports of value-function-kernels.wat used in training (see the comments there). */
interface TrainKernels {
  mm(
    a: number,
    aStride: number,
    b: number,
    bStride: number,
    bias: number,
    c: number,
    cStride: number,
    rows: number,
    k: number,
    nBytes: number,
    relu: number,
  ): void;
  mmTN(
    a: number,
    aStride: number,
    b: number,
    bStride: number,
    c: number,
    cStride: number,
    rows: number,
    k: number,
    nBytes: number,
  ): void;
  colSum(b: number, bStride: number, c: number, rows: number, nBytes: number): void;
  reluMask(g: number, act: number, nBytes: number): void;
}

/** Rows of the kernel memory are padded with zeros to a multiple of 8 floats (the kernels' tiles). */
const pad8 = (n: number): number => (n + 7) & ~7;
const PAGE = 65536;

let trainModule: WasmModule | undefined;
function trainKernelModule(): WasmModule {
  if (trainModule) return trainModule;
  const module = simdKernels();
  if (!module)
    throw new Error(
      'value-function training (engine f32) needs WebAssembly SIMD, which this runtime lacks: use --vf-engine tfjs',
    );
  trainModule = module;
  return module;
}

/**
 * The value function's training net: forward, backward and the loss
 * (valueFunctionLossAndGradient) over a batch, the dense layers on the WebAssembly SIMD (f32x4)
 * kernels of value-function-kernels.wat, the module serving evaluates the value function with
 * (`mm`, `mmTN`, `colSum`, `reluMask`: float32 products and sums, as tfjs's), BatchNorm and the
 * loss in plain TypeScript. The reference implementation is the tfjs `ValueFunctionNet`: the
 * same initial weights from the same seed, the same BatchNorm (batch statistics while training,
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
  private readonly k: TrainKernels;
  private readonly memory: { buffer: ArrayBuffer; grow(pages: number): number };
  private f32: Float32Array;
  /** Where the per-row buffers start (after the fixed ones), and rows they hold now. */
  private readonly rowStart: number;
  private rows = 0;
  /** Byte offsets: zeros (a bias of 0), the input rows, the gradient at the output (rows x 8). */
  private readonly zeros: number;
  private x = 0;
  private dOut = 0;
  private out = new Float64Array(0);
  private dOut64 = new Float64Array(0);
  private dEmbedding = new Float64Array(0);

  constructor(
    readonly arch: ValueFunctionArch,
    seed: number,
  ) {
    const module = trainKernelModule();
    const widths = [arch.d, ...arch.hidden, 1];
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
    let bytes = 0;
    const alloc = (floats: number) => {
      const offset = bytes;
      bytes += pad8(floats) * 4;
      return offset;
    };
    // He initialisation, drawn in the tfjs net's order ([in][out] per layer) from the same seed.
    const rng = new Rng(seed);
    this.layers = [];
    for (let i = 0; i <= last; i++) {
      const nin = widths[i] as number;
      const nout = widths[i + 1] as number;
      const pin = pad8(nin);
      const pout = pad8(nout);
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
        pin,
        pout,
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
        batchMean: new Float64Array(nout),
        batchVar: new Float64Array(nout),
        invStd: new Float64Array(nout),
        w: alloc(pin * pout),
        wBack: alloc(pout * pin),
        bias: alloc(pout),
        gW: alloc(pin * pout),
        gBias: alloc(pout),
        pre: 0,
        act: 0,
        grad: 0,
      });
    }
    this.zeros = alloc(Math.max(...widths.map(pad8)));
    this.rowStart = bytes;
    const wasm = wasmApi();
    if (wasm === undefined) throw new Error('WebAssembly is not available');
    this.memory = new wasm.Memory({ initial: Math.ceil(bytes / PAGE) + 1 });
    this.k = new wasm.Instance(module, { env: { memory: this.memory } }).exports as TrainKernels;
    this.f32 = new Float32Array(this.memory.buffer);
    this.paramsChanged();
  }

  /** Copies `params` into the kernels' weight matrices after it changed. */
  paramsChanged(): void {
    const f = this.f32;
    for (const l of this.layers) {
      const { nin, nout, pin, pout, wT } = l;
      const w = l.w / 4;
      const wBack = l.wBack / 4;
      for (let j = 0; j < nout; j++) {
        for (let i = 0; i < nin; i++) {
          const v = wT[j * nin + i] as number;
          f[w + i * pout + j] = v;
          f[wBack + j * pin + i] = v;
        }
      }
      f.set(l.b, l.bias / 4);
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
    const { d } = this.arch;
    const f = this.f32;
    const x0 = this.x / 4;
    const xs = pad8(d);
    for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) f[x0 + r * xs + j] = batch.x[r * d + j] as number;
    this.forward(rows);
    const lastLayer = this.layers[this.layers.length - 1] as Layer;
    const out = this.out;
    for (let r = 0; r < rows; r++) out[r] = f[lastLayer.act / 4 + r * lastLayer.pout] as number;
    // The embedding: the last hidden layer's activations (the input rows in a net without one).
    const embedLayer = this.layers[this.layers.length - 2];
    const e = embedLayer ? embedLayer.nout : d;
    const embedding = new Float64Array(oeWeight === 0 ? 0 : rows * e);
    if (oeWeight !== 0) {
      const from = embedLayer ? embedLayer.act / 4 : x0;
      const stride = embedLayer ? embedLayer.pout : xs;
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < e; j++) embedding[r * e + j] = f[from + r * stride + j] as number;
    }
    // Hard mining on the current embeddings (the selection carries no gradient).
    const pairs =
      oeWeight === 0
        ? { posIndex: new Int32Array(0), negIndex: new Int32Array(0), valid: new Float32Array(0) }
        : selectHardPairs(Float32Array.from(embedding), e, batch.masks, batch.T1);
    const { loss } = valueFunctionLossAndGradient(
      { b: batch.B, t1: batch.T1, out, embedding, e, mean: batch.mean, std: batch.std, ...pairs },
      gamma,
      oeWeight,
      this.dOut64,
      this.dEmbedding,
    );
    const dOut = this.dOut / 4;
    for (let r = 0; r < rows; r++) f[dOut + r * 8] = this.dOut64[r] as number;
    this.backward(rows, oeWeight !== 0 ? e : 0);
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

  /** Places the per-row buffers for `rows` rows (growing the memory), all zeros, padding included. */
  private ensureRows(rows: number): void {
    if (rows <= this.rows) return;
    let bytes = this.rowStart;
    const alloc = (floats: number) => {
      const offset = bytes;
      bytes += pad8(floats) * 4;
      return offset;
    };
    this.x = alloc(rows * pad8(this.arch.d));
    this.dOut = alloc(rows * 8);
    for (const [i, l] of this.layers.entries()) {
      l.pre = l.gamma ? alloc(rows * l.pout) : 0;
      l.act = alloc(rows * l.pout);
      l.grad = i > 0 ? alloc(rows * l.pin) : 0;
    }
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE));
    this.f32 = new Float32Array(this.memory.buffer);
    this.f32.fill(0, this.rowStart / 4, bytes / 4);
    this.rows = rows;
    const e = (this.layers[this.layers.length - 2]?.nout ?? this.arch.d) as number;
    this.out = new Float64Array(rows);
    this.dOut64 = new Float64Array(rows);
    this.dEmbedding = new Float64Array(rows * e);
  }

  /** Training-mode forward over the first `rows` rows of x. */
  private forward(rows: number): void {
    let input = this.x;
    let inStride = pad8(this.arch.d) * 4;
    const last = this.layers.length - 1;
    for (const [li, l] of this.layers.entries()) {
      const stride = l.pout * 4;
      const bnLayer = l.gamma !== undefined;
      this.k.mm(
        input,
        inStride,
        l.w,
        stride,
        l.bias,
        bnLayer ? l.pre : l.act,
        stride,
        rows,
        l.nin,
        stride,
        bnLayer || li === last ? 0 : 1,
      );
      if (bnLayer) this.batchNormForward(l, rows);
      input = l.act;
      inStride = stride;
    }
  }

  /** BatchNorm with the batch's (biased) statistics: pre becomes zhat = (z - mean) / sqrt(var + eps), act = ReLU(gamma zhat + beta). */
  private batchNormForward(l: Layer, rows: number): void {
    const { nout, pout, gamma, beta } = l;
    if (!gamma || !beta) return;
    const f = this.f32;
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

  /** Gradients of the last loss into `grads`, from dOut (and dEmbedding, of width e, when e > 0). */
  private backward(rows: number, e: number): void {
    const last = this.layers.length - 1;
    const f = this.f32;
    // up: the gradient with respect to the current layer's pre-activations (its linear output).
    let up = this.dOut;
    let upStride = 8 * 4;
    for (let li = last; li >= 0; li--) {
      const l = this.layers[li] as Layer;
      const below = this.layers[li - 1];
      const input = below ? below.act : this.x;
      const inStride = l.pin * 4;
      const stride = l.pout * 4;
      this.k.mmTN(input, inStride, up, upStride, l.gW, stride, rows, (l.nin + 3) & ~3, stride);
      this.k.colSum(up, upStride, l.gBias, rows, stride);
      if (!below) break;
      // d loss / d (activations of the layer below), plus the embedding term's gradient there.
      this.k.mm(up, upStride, l.wBack, inStride, this.zeros, l.grad, inStride, rows, l.nout, inStride, 0);
      if (e > 0 && li === last) {
        const g = l.grad / 4;
        for (let r = 0; r < rows; r++)
          for (let j = 0; j < e; j++)
            f[g + r * l.pin + j] = (f[g + r * l.pin + j] as number) + (this.dEmbedding[r * e + j] as number);
      }
      if (below.gamma) this.throughBatchNorm(below, rows, l.grad);
      else this.k.reluMask(l.grad, below.act, rows * inStride);
      up = l.grad;
      upStride = inStride;
    }
    for (const l of this.layers) {
      const { nin, nout, pout } = l;
      const gW = l.gW / 4;
      for (let j = 0; j < nout; j++) for (let i = 0; i < nin; i++) l.gWT[j * nin + i] = f[gW + i * pout + j] as number;
      l.gB.set(f.subarray(l.gBias / 4, l.gBias / 4 + nout));
    }
  }

  /**
   * Takes g (d loss / d activations of hidden layer l, at byte offset `grad`, rows of l.pout)
   * back through its ReLU and its BatchNorm (batch statistics), in place:
   * dz = gamma / sigma * (dy - mean(dy) - zhat * mean(dy * zhat)), dgamma = sum dy zhat, dbeta = sum dy.
   */
  private throughBatchNorm(l: Layer, rows: number, grad: number): void {
    const { nout: n, pout } = l;
    if (!l.gamma || !l.gGamma || !l.gBeta) return;
    const f = this.f32;
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
          ((f[g + k] as number) -
            (sumDy[j] as number) / rows -
            ((f[pre + k] as number) * (sumDyZ[j] as number)) / rows);
      }
    }
  }
}
