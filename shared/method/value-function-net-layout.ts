import { Rng } from '../util/random.js';
import { type KernelLayout, pad8, simdKernels, type WasmModule } from './value-function-wasm.js';

/**
 * The value function's MLP (d-64-32-32-16-1, ReLU on hidden layers, optional BatchNorm, the
 * last hidden activation being the embedding g(phi)).
 */
export interface ValueFunctionArch {
  d: number;
  hidden: number[];
  batchNorm: boolean;
}

/**
 * The exports of value-function-kernels.wat used in training (ValueFunctionNetF32; see the
 * comments in the .wat). Every pointer and stride is in bytes.
 */
export interface TrainKernels {
  /** Dense product (4-row tiles): the first layer's forward pass. */
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
  /** Dense weight gradient [in][out] added into c: the first layer's (its inputs are dense). */
  mmTN(
    a: number,
    aStride: number,
    b: number,
    bStride: number,
    c: number,
    cStride: number,
    rows: number,
    kn: number,
    nBytes: number,
  ): void;
  /** The product over the k of each row's list (the non-zero columns of a). */
  mmS(
    a: number,
    aStride: number,
    list: number,
    listStride: number,
    b: number,
    bStride: number,
    bias: number,
    c: number,
    cStride: number,
    rows: number,
    nBytes: number,
    relu: number,
  ): void;
  /** Weight gradient [out][in] added into c from the inputs a and the listed output gradients g. */
  mmTNS(
    a: number,
    aStride: number,
    g: number,
    gStride: number,
    list: number,
    listStride: number,
    c: number,
    cStride: number,
    rows: number,
    kBytes: number,
  ): void;
  /** The per-row lists of non-zero columns. */
  nonzeros(
    a: number,
    aStride: number,
    rows: number,
    nBytes: number,
    table: number,
    list: number,
    listStride: number,
  ): void;
  colSum(b: number, bStride: number, c: number, rows: number, nBytes: number): void;
  reluMask(g: number, act: number, nBytes: number): void;
  adam(
    p: number,
    g: number,
    m: number,
    v: number,
    pairs: number,
    learningRate: number,
    c1: number,
    c2: number,
    eps: number,
    beta1: number,
    beta2: number,
  ): void;
}

let trainModule: WasmModule | undefined;

/** The kernel module, or an error that says what to do where the runtime lacks wasm SIMD. */
export function trainKernelModule(): WasmModule {
  if (trainModule) return trainModule;
  const module = simdKernels();
  if (!module)
    throw new Error(
      'value-function training (engine f32) needs WebAssembly SIMD, which this runtime lacks: use --vf-engine tfjs',
    );
  trainModule = module;
  return module;
}

/** `nonzeros`' table: for each 4-bit mask, the positions of its set bits in order (8 u16 a row). */
export function nonzeroTable(): Uint16Array {
  const table = new Uint16Array(16 * 8);
  for (let m = 0; m < 16; m++) {
    let n = 0;
    for (let bit = 0; bit < 4; bit++) if (m & (1 << bit)) table[m * 8 + n++] = bit;
  }
  return table;
}

/** Bytes of a list row for n columns: the count, n indices and the 16-byte slack of the last store. */
export const listStride = (n: number): number => (2 * n + 10 + 15) & ~15;

/** One dense layer of the training net: its parameters (views into the net's vectors) and its place in the kernel memory. */
export interface TrainLayer {
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
   * (back to the input), bias, the weight gradient [pout][pin] and the bias gradient. Per row
   * (placed by the net's ensureRows): pre-activations (BatchNorm: normalised, zhat),
   * activations, the gradient with respect to this layer's input (rows x pin; layers above the
   * first), and the list of non-zero columns (hidden layers: of the activations, then, with
   * BatchNorm, of the gradient at the pre-activations), rows of `listStride` bytes.
   */
  w: number;
  wBack: number;
  bias: number;
  gW: number;
  gBias: number;
  pre: number;
  act: number;
  grad: number;
  list: number;
  listStride: number;
}

/**
 * The training net's layers: their parameters as views into one flat vector (per layer weights
 * [out][in], bias, BatchNorm gamma and beta; He initialisation drawn in the tfjs net's order
 * from the seed) and their fixed buffers in the kernel memory, allocated from `layout`.
 */
export function trainLayers(
  arch: ValueFunctionArch,
  seed: number,
  layout: KernelLayout,
): { layers: TrainLayer[]; params: Float32Array; grads: Float32Array } {
  const widths = [arch.d, ...arch.hidden, 1];
  const last = widths.length - 2;
  const bn = (i: number) => arch.batchNorm && i < last;
  let size = 0;
  for (let i = 0; i <= last; i++) {
    const nout = widths[i + 1] as number;
    size += (widths[i] as number) * nout + nout + (bn(i) ? 2 * nout : 0);
  }
  const params = new Float32Array(size);
  const grads = new Float32Array(size);
  let at = 0;
  const take = (n: number): [Float32Array, Float32Array] => {
    const views: [Float32Array, Float32Array] = [params.subarray(at, at + n), grads.subarray(at, at + n)];
    at += n;
    return views;
  };
  // He initialisation, drawn in the tfjs net's order ([in][out] per layer) from the same seed.
  const rng = new Rng(seed);
  const layers: TrainLayer[] = [];
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
    layers.push({
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
      w: layout.alloc(pin * pout),
      wBack: layout.alloc(pout * pin),
      bias: layout.alloc(pout),
      gW: layout.alloc(pout * pin),
      gBias: layout.alloc(pout),
      pre: 0,
      act: 0,
      grad: 0,
      list: 0,
      listStride: listStride(pout),
    });
  }
  return { layers, params, grads };
}

/**
 * A vector in the net's `params` layout (the params, or the grads) split as the tfjs net's
 * variables: weights [in][out] of every layer, then biases, then BatchNorm gammas, then betas.
 */
export function inTfjsLayout(layers: TrainLayer[], vector: Float32Array): Float32Array[] {
  const view = (part: Float32Array) => vector.subarray(part.byteOffset / 4, part.byteOffset / 4 + part.length);
  const weights = layers.map((l) => {
    const wT = view(l.wT);
    const w = new Float32Array(l.nin * l.nout);
    for (let r = 0; r < l.nin; r++) for (let j = 0; j < l.nout; j++) w[r * l.nout + j] = wT[j * l.nin + r] as number;
    return w;
  });
  const parts = (pick: (l: TrainLayer) => Float32Array | undefined) =>
    layers.flatMap((l) => {
      const p = pick(l);
      return p ? [view(p).slice()] : [];
    });
  return [...weights, ...parts((l) => l.b), ...parts((l) => l.gamma), ...parts((l) => l.beta)];
}

/**
 * The weight and bias gradients from the kernel memory f into the layers' views of `grads`:
 * the first layer's weights are [in][out] there (mmTN), the others' [out][in] (mmTNS).
 */
export function copyGradients(f: Float32Array, layers: TrainLayer[]): void {
  for (const [i, l] of layers.entries()) {
    const { nin, nout, pin, pout } = l;
    const gW = l.gW / 4;
    if (i === 0)
      for (let j = 0; j < nout; j++) for (let r = 0; r < nin; r++) l.gWT[j * nin + r] = f[gW + r * pout + j] as number;
    else for (let j = 0; j < nout; j++) l.gWT.set(f.subarray(gW + j * pin, gW + j * pin + nin), j * nin);
    l.gB.set(f.subarray(l.gBias / 4, l.gBias / 4 + nout));
  }
}
