import type { DenseLayer } from '../schemas/checkpoint.js';
import {
  batchNormForward,
  batchNormState,
  checkpointLayer,
  throughBatchNorm,
  updateRunningStats,
} from './value-function-batch-norm.js';
import {
  type LossChunking,
  type PackedBatch,
  selectHardPairs,
  valueFunctionLossAndGradient,
} from './value-function-loss.js';
import {
  listStride,
  nonzeroTable,
  copyGradients,
  inTfjsLayout,
  type TrainKernels,
  type TrainLayer,
  trainKernelModule,
  trainLayers,
  type ValueFunctionArch,
} from './value-function-net-layout.js';
import { instantiateKernels, KernelLayout, pad8, WASM_PAGE, type WasmMemory } from './value-function-wasm.js';

export type { PackedBatch } from './value-function-loss.js';
export type { ValueFunctionArch } from './value-function-net-layout.js';

/** Rows of a chunk (whole tasks): its per-row buffers, ~2 KB a row, stay within a core's L2 cache. */
const CHUNK_ROWS = 256;
/** A list row of the output gradient (one column). */
const OUT_LIST_STRIDE = listStride(8);

/**
 * The value function's training net: forward, backward and the loss
 * (valueFunctionLossAndGradient) over a batch, the dense layers on the WebAssembly SIMD (f32x4)
 * kernels of value-function-kernels.wat, the module serving evaluates the value function with:
 * float32 products and sums, as tfjs's. Above the first layer the products skip the zeros of
 * the ReLUs (`nonzeros`, `mmS`, `mmTNS`: the same sums, term for term, as dense ones), which
 * are half of a fresh net's activations and most of a trained one's. BatchNorm
 * (value-function-batch-norm.ts) and the loss are plain TypeScript; Adam is a kernel too. The
 * reference implementation is the tfjs `ValueFunctionNet`: the same initial weights from the
 * same seed, the same BatchNorm (batch statistics while training, running averages folded into
 * the checkpoint), the same checkpoint layers.
 *
 * All trainable values live in one flat float32 vector `params` (gradients in `grads`, the same
 * layout), so the optimisers and Reptile's interpolation work on it whole; after changing
 * `params`, call `paramsChanged()`.
 */
export class ValueFunctionNetF32 {
  readonly params: Float32Array;
  readonly grads: Float32Array;
  private readonly layers: TrainLayer[];
  private readonly k: TrainKernels;
  private readonly memory: WasmMemory;
  private f32: Float32Array;
  /** Where the per-row buffers start (after the fixed ones), and rows they hold now. */
  private readonly rowStart: number;
  private rows = 0;
  /** Byte offsets: zeros (a bias of 0), `nonzeros`' table, Adam's parameters, gradients and moments. */
  private readonly zeros: number;
  private readonly table: number;
  private readonly adamAt: { p: number; g: number; m: number; v: number };
  private adamSteps = 0;
  /** Byte offsets per row: the input rows, the gradient at the output (rows x 8) and its list. */
  private x = 0;
  private dOut = 0;
  private outList = 0;
  private out = new Float64Array(0);
  private dOut64 = new Float64Array(0);
  private dEmbedding = new Float64Array(0);

  constructor(
    readonly arch: ValueFunctionArch,
    seed: number,
  ) {
    const module = trainKernelModule();
    const layout = new KernelLayout();
    const { layers, params, grads } = trainLayers(arch, seed, layout);
    this.layers = layers;
    this.params = params;
    this.grads = grads;
    const size = params.length;
    const widths = [arch.d, ...arch.hidden, 1];
    this.zeros = layout.alloc(Math.max(...widths.map(pad8)));
    this.table = layout.alloc(64);
    this.adamAt = { p: layout.alloc(size), g: layout.alloc(size), m: layout.alloc(size), v: layout.alloc(size) };
    this.rowStart = layout.bytes;
    const { exports, memory } = instantiateKernels<TrainKernels>(module, layout.bytes);
    this.k = exports;
    this.memory = memory;
    this.f32 = new Float32Array(memory.buffer);
    new Uint16Array(memory.buffer).set(nonzeroTable(), this.table / 2);
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
   * One Adam step on `params` from `grads` (then paramsChanged), its moments kept here: the
   * `adam` kernel, BatchedOptimizer's arithmetic bit for bit (optimizers.ts), without its JS loop.
   */
  adamStep(learningRate: number, beta1: number, beta2: number, eps: number): void {
    this.adamSteps++;
    const f = this.f32;
    const { p, g, m, v } = this.adamAt;
    f.set(this.params, p / 4);
    f.set(this.grads, g / 4);
    const c1 = 1 - beta1 ** this.adamSteps;
    const c2 = 1 - beta2 ** this.adamSteps;
    this.k.adam(p, g, m, v, (this.params.length + 1) >> 1, learningRate, c1, c2, eps, beta1, beta2);
    this.params.set(f.subarray(p / 4, p / 4 + this.params.length));
    this.paramsChanged();
  }

  /**
   * A vector in `params`' layout (params itself, or grads) split as the tfjs net's variables:
   * weights [in][out] of every layer, then biases, then BatchNorm gammas, then betas.
   */
  inTfjsLayout(vector: Float32Array): Float32Array[] {
    return inTfjsLayout(this.layers, vector);
  }

  /**
   * The batch's mean task loss (paper Eq. 2 with the ordinal-embedding term at oeWeight, hard
   * pairs mined on this forward pass's embeddings) and its gradient in `grads`. BatchNorm uses
   * the batch's statistics; `updateRunningStats` folds them into the running averages.
   */
  lossAndGradient(batch: PackedBatch, gamma: number, oeWeight: number): number {
    const { B, T1 } = batch;
    // Chunks of whole tasks, about CHUNK_ROWS rows, so that a chunk's rows stay in the core's
    // cache from the forward pass to the backward; BatchNorm needs the whole batch at once.
    const perChunk = this.arch.batchNorm ? B : Math.max(1, Math.min(B, Math.floor(CHUNK_ROWS / T1)));
    this.ensureRows(perChunk * T1);
    const f = this.f32;
    for (const l of this.layers) {
      f.fill(0, l.gW / 4, l.gW / 4 + l.pout * l.pin);
      f.fill(0, l.gBias / 4, l.gBias / 4 + l.pout);
    }
    const chunking = { tasks: B, sums: { regress: 0, oe: 0 } };
    let loss = 0;
    for (let t0 = 0; t0 < B; t0 += perChunk) {
      const tasks = Math.min(perChunk, B - t0);
      loss = this.chunk(batch, t0, tasks, gamma, oeWeight, chunking);
    }
    copyGradients(f, this.layers);
    return loss;
  }

  /** Forward, loss and backward of tasks t0 .. t0 + tasks of the batch, adding to the gradients. */
  private chunk(
    batch: PackedBatch,
    t0: number,
    tasks: number,
    gamma: number,
    oeWeight: number,
    chunking: LossChunking,
  ): number {
    const { T1 } = batch;
    const rows = tasks * T1;
    const { d } = this.arch;
    const f = this.f32;
    const x0 = this.x / 4;
    const xs = pad8(d);
    const bx = batch.x;
    const from = t0 * T1 * d;
    for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) f[x0 + r * xs + j] = bx[from + r * d + j] as number;
    this.forward(rows);
    const lastLayer = this.layers[this.layers.length - 1] as TrainLayer;
    const out = this.out;
    for (let r = 0; r < rows; r++) out[r] = f[lastLayer.act / 4 + r * lastLayer.pout] as number;
    // The embedding: the last hidden layer's activations (the input rows in a net without one).
    const embedLayer = this.layers[this.layers.length - 2];
    const e = embedLayer ? embedLayer.nout : d;
    const embedding = new Float64Array(oeWeight === 0 ? 0 : rows * e);
    if (oeWeight !== 0) {
      const at = embedLayer ? embedLayer.act / 4 : x0;
      const stride = embedLayer ? embedLayer.pout : xs;
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < e; j++) embedding[r * e + j] = f[at + r * stride + j] as number;
    }
    // Hard mining on the current embeddings (the selection carries no gradient), task by task.
    const pairs =
      oeWeight === 0
        ? { posIndex: new Int32Array(0), negIndex: new Int32Array(0), valid: new Float32Array(0) }
        : selectHardPairs(Float32Array.from(embedding), e, batch.masks.slice(t0, t0 + tasks), T1);
    const labels = {
      mean: batch.mean.subarray(t0 * T1, t0 * T1 + rows),
      std: batch.std.subarray(t0 * T1, t0 * T1 + rows),
    };
    const { loss } = valueFunctionLossAndGradient(
      { b: tasks, t1: T1, out, embedding, e, ...labels, ...pairs },
      gamma,
      oeWeight,
      this.dOut64,
      this.dEmbedding,
      chunking,
    );
    const dOut = this.dOut / 4;
    for (let r = 0; r < rows; r++) f[dOut + r * 8] = this.dOut64[r] as number;
    this.backward(rows, oeWeight !== 0 ? e : 0);
    return loss;
  }

  /** Folds the last batch's BatchNorm statistics into the running averages (as the tfjs net does). */
  updateRunningStats(): void {
    for (const l of this.layers) updateRunningStats(l);
  }

  /** Inference layers with BatchNorm folded in, for the checkpoint. */
  toLayers(): DenseLayer[] {
    const weights = this.inTfjsLayout(this.params);
    return this.layers.map((l, i) =>
      checkpointLayer(l.nin, l.nout, weights[i] as Float32Array, Float32Array.from(l.b), batchNormState(l)),
    );
  }

  /** Places the per-row buffers for `rows` rows (growing the memory), all zeros, padding included. */
  private ensureRows(rows: number): void {
    if (rows <= this.rows) return;
    const layout = new KernelLayout(this.rowStart);
    this.x = layout.alloc(rows * pad8(this.arch.d));
    this.dOut = layout.alloc(rows * 8);
    this.outList = layout.alloc((rows * OUT_LIST_STRIDE) / 4);
    for (const [i, l] of this.layers.entries()) {
      l.pre = l.gamma ? layout.alloc(rows * l.pout) : 0;
      l.act = layout.alloc(rows * l.pout);
      l.grad = i > 0 ? layout.alloc(rows * l.pin) : 0;
      l.list = layout.alloc((rows * l.listStride) / 4);
    }
    const have = this.memory.buffer.byteLength;
    if (layout.bytes > have) this.memory.grow(Math.ceil((layout.bytes - have) / WASM_PAGE));
    this.f32 = new Float32Array(this.memory.buffer);
    this.f32.fill(0, this.rowStart / 4, layout.bytes / 4);
    this.rows = rows;
    const e = (this.layers[this.layers.length - 2]?.nout ?? this.arch.d) as number;
    this.out = new Float64Array(rows);
    this.dOut64 = new Float64Array(rows);
    this.dEmbedding = new Float64Array(rows * e);
  }

  /**
   * Training-mode forward over the first `rows` rows of x: the first layer dense, the others
   * over the non-zero activations listed after each hidden layer.
   */
  private forward(rows: number): void {
    const last = this.layers.length - 1;
    for (const [li, l] of this.layers.entries()) {
      const below = this.layers[li - 1];
      const stride = l.pout * 4;
      const bnLayer = l.gamma !== undefined;
      const into = bnLayer ? l.pre : l.act;
      const relu = bnLayer || li === last ? 0 : 1;
      if (below) {
        const inStride = below.pout * 4;
        this.k.mmS(
          below.act,
          inStride,
          below.list,
          below.listStride,
          l.w,
          stride,
          l.bias,
          into,
          stride,
          rows,
          stride,
          relu,
        );
      } else {
        this.k.mm(this.x, pad8(this.arch.d) * 4, l.w, stride, l.bias, into, stride, rows, l.nin, stride, relu);
      }
      if (bnLayer) batchNormForward(this.f32, l, rows);
      if (li < last) this.k.nonzeros(l.act, stride, rows, stride, this.table, l.list, l.listStride);
    }
  }

  /** Adds the gradients of the chunk's loss from dOut (and dEmbedding, of width e, when e > 0). */
  private backward(rows: number, e: number): void {
    const last = this.layers.length - 1;
    const f = this.f32;
    // up: the gradient with respect to the current layer's pre-activations (its linear output),
    // and the list of its non-zero columns: the output's own; below it, a ReLU layer's active
    // units (the gradient is 0 elsewhere); a BatchNorm layer's listed anew (it is dense).
    let up = this.dOut;
    let upStride = 8 * 4;
    let upList = this.outList;
    let upListStride = OUT_LIST_STRIDE;
    this.k.nonzeros(up, upStride, rows, upStride, this.table, upList, upListStride);
    for (let li = last; li >= 0; li--) {
      const l = this.layers[li] as TrainLayer;
      const below = this.layers[li - 1];
      const input = below ? below.act : this.x;
      const inStride = l.pin * 4;
      const stride = l.pout * 4;
      if (below) this.k.mmTNS(input, inStride, up, upStride, upList, upListStride, l.gW, inStride, rows, inStride);
      else this.k.mmTN(input, inStride, up, upStride, l.gW, stride, rows, (l.nin + 3) & ~3, stride);
      this.k.colSum(up, upStride, l.gBias, rows, stride);
      if (!below) break;
      // d loss / d (activations of the layer below), plus the embedding term's gradient there.
      this.k.mmS(
        up,
        upStride,
        upList,
        upListStride,
        l.wBack,
        inStride,
        this.zeros,
        l.grad,
        inStride,
        rows,
        inStride,
        0,
      );
      if (e > 0 && li === last) {
        const g = l.grad / 4;
        for (let r = 0; r < rows; r++)
          for (let j = 0; j < e; j++)
            f[g + r * l.pin + j] = (f[g + r * l.pin + j] as number) + (this.dEmbedding[r * e + j] as number);
      }
      if (below.gamma) {
        throughBatchNorm(f, below, rows, l.grad);
        // (the first layer's weight gradient is dense: it needs no list)
        if (li > 1) this.k.nonzeros(l.grad, inStride, rows, inStride, this.table, below.list, below.listStride);
      } else this.k.reluMask(l.grad, below.act, rows * inStride);
      up = l.grad;
      upStride = inStride;
      upList = below.list;
      upListStride = below.listStride;
    }
  }
}
