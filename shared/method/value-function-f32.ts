import type { ValueFunctionCheckpoint } from '../schemas/checkpoint.js';
import { denseBackward, denseForward } from './dense-kernels.js';
import { WASM_BASE64 } from './value-function-kernels.wasm.js';

/** A differentiable scalar function of phi: what Guided ES and value-function descent need. */
export interface ValueFn {
  readonly d: number;
  /** Normalised (lower is better) value at phi. */
  value(phi: Float32Array): number;
  /** Value and d value / d phi. */
  valueAndGradient(phi: Float32Array, gradOut: Float32Array): number;
}

interface Layer {
  in: number;
  out: number;
  /** Weights transposed, [out][in]: row j is the fan-in of unit j (see dense-kernels.ts). */
  wT: Float64Array;
  b: Float64Array;
}

export interface CompileOptions {
  /** Use the WebAssembly SIMD kernels when the runtime has them (default true). */
  simd?: boolean;
}

/**
 * The value function evaluated without tfjs: WebAssembly SIMD (f32x4) kernels for the dense
 * layers where the runtime supports them, plain float64 typed-array loops otherwise. At batch 1
 * a d-64-32-32-16-1 forward is ~4.6k multiply-adds: microseconds here, where tfjs spends most of
 * a millisecond dispatching ops. Used for serving and for meta-test steps.
 *
 * The JS path is the dense-layer kernels of dense-kernels.ts: the forward pass one dot product per unit over transposed
 * weights, the backward pass adding the fan-in row of each unit with a non-zero gradient (ReLU
 * zeroes about half), so a gradient costs well under two forward passes. The SIMD path accumulates in float32
 * like tfjs; the JS path in float64 (V8 keeps doubles in registers without float32 conversions
 * on every access).
 */
export class CompiledValueFunction implements ValueFn {
  readonly d: number;
  readonly version: number;
  private readonly members: Layer[][];
  private readonly inMean: Float64Array;
  private readonly inInvStd: Float64Array;
  private readonly tMean: number;
  private readonly tStd: number;
  private readonly maxWidth: number;
  // Scratch buffers for batch-1 calls, per member and layer.
  private readonly acts: Float64Array[][];
  private readonly x: Float64Array;
  private readonly gradA: Float64Array;
  private readonly gradB: Float64Array;
  private readonly gradTotal: Float64Array;
  private readonly simd: SimdPath | undefined;

  constructor(
    readonly checkpoint: ValueFunctionCheckpoint,
    options: CompileOptions = {},
  ) {
    this.d = checkpoint.d;
    this.version = checkpoint.version;
    this.members = checkpoint.members.map((m) =>
      m.layers.map((l) => {
        // Checkpoint weights are float32 values stored as JSON numbers: round through float32 so
        // that the float64 arithmetic starts from exactly the trained weights.
        const wT = new Float64Array(l.in * l.out);
        for (let i = 0; i < l.in; i++) {
          for (let j = 0; j < l.out; j++) wT[j * l.in + i] = Math.fround(l.weights[i * l.out + j] as number);
        }
        return { in: l.in, out: l.out, wT, b: Float64Array.from(l.bias, Math.fround) };
      }),
    );
    this.inMean = Float64Array.from(checkpoint.inputNormalisation.mean, Math.fround);
    this.inInvStd = Float64Array.from(checkpoint.inputNormalisation.std, (s) => 1 / Math.fround(s));
    this.tMean = checkpoint.targetNormalisation.mean;
    this.tStd = checkpoint.targetNormalisation.std;
    this.maxWidth = Math.max(this.d, ...this.members.flatMap((m) => m.map((l) => l.out)));
    this.acts = this.members.map((m) => m.map((l) => new Float64Array(l.out)));
    this.x = new Float64Array(this.d);
    this.gradA = new Float64Array(this.maxWidth);
    this.gradB = new Float64Array(this.maxWidth);
    this.gradTotal = new Float64Array(this.d);
    const module = options.simd === false ? null : simdKernels();
    this.simd = module
      ? new SimdPath(module, checkpoint, this.d, this.maxWidth, { mean: this.inMean, invStd: this.inInvStd })
      : undefined;
  }

  /** Which kernels evaluate this function. */
  get backend(): 'wasm-simd' | 'js' {
    return this.simd ? 'wasm-simd' : 'js';
  }

  value(phi: Float32Array): number {
    return this.forwardOne(phi, 0);
  }

  valueAndGradient(phi: Float32Array, gradOut: Float32Array): number {
    const v = this.forwardOne(phi, 0);
    this.backwardOne(gradOut, 0);
    return v;
  }

  /** Normalised values for n rows of phi (row-major n x d). */
  predict(phis: Float32Array, n: number, out = new Float32Array(n)): Float32Array {
    for (let r = 0; r < n; r++) out[r] = this.forwardOne(phis, r * this.d);
    return out;
  }

  /** Normalised values and gradients (row-major n x d) for n rows of phi. */
  predictWithGradients(
    phis: Float32Array,
    n: number,
    values = new Float32Array(n),
    gradients = new Float32Array(n * this.d),
  ): { values: Float32Array; gradients: Float32Array } {
    for (let r = 0; r < n; r++) {
      values[r] = this.forwardOne(phis, r * this.d);
      this.backwardOne(gradients, r * this.d);
    }
    return { values, gradients };
  }

  /** Forward pass for the row at `offset`, keeping activations for backwardOne. */
  private forwardOne(phis: Float32Array, offset: number): number {
    const d = this.d;
    if (this.simd) {
      return this.tMean + (this.tStd * this.simd.forward(phis, offset)) / this.members.length;
    }
    const x = this.x;
    for (let i = 0; i < d; i++)
      x[i] = ((phis[offset + i] as number) - (this.inMean[i] as number)) * (this.inInvStd[i] as number);
    let sum = 0;
    for (let m = 0; m < this.members.length; m++) {
      const layers = this.members[m] as Layer[];
      const acts = this.acts[m] as Float64Array[];
      let input: Float64Array = x;
      const last = layers.length - 1;
      for (let li = 0; li <= last; li++) {
        const { in: nin, out: nout, wT, b } = layers[li] as Layer;
        const a = acts[li] as Float64Array;
        denseForward(input, wT, b, nin, nout, 1, li < last, a);
        input = a;
      }
      sum += input[0] as number;
    }
    return this.tMean + (this.tStd * sum) / this.members.length;
  }

  /** Gradient of the last forwardOne's value with respect to raw phi, into gradOut[at, at + d). */
  private backwardOne(gradOut: Float32Array, at: number): void {
    const d = this.d;
    const scale = this.tStd / this.members.length;
    if (this.simd) {
      this.simd.backward(scale, this.inInvStd, gradOut, at, this.gradTotal);
      return;
    }
    const total = this.gradTotal;
    total.fill(0);
    for (let m = 0; m < this.members.length; m++) {
      const layers = this.members[m] as Layer[];
      const acts = this.acts[m] as Float64Array[];
      // upstream: d value / d (pre-activation of layer li); starts at the linear output.
      let upstream = this.gradA;
      let next = this.gradB;
      upstream[0] = scale;
      for (let li = layers.length - 1; li >= 0; li--) {
        const { in: nin, out: nout, wT } = layers[li] as Layer;
        // d value / d (input of layer li), back through the ReLU of the layer below (if any).
        denseBackward(upstream, wT, nin, nout, 1, li > 0 ? (acts[li - 1] as Float64Array) : undefined, next);
        const t = upstream;
        upstream = next;
        next = t;
      }
      for (let i = 0; i < d; i++) total[i] = (total[i] as number) + (upstream[i] as number);
    }
    for (let i = 0; i < d; i++) gradOut[at + i] = (total[i] as number) * (this.inInvStd[i] as number);
  }
}

// ---------------------------------------------------------------------------------------------
// WebAssembly SIMD kernels (f32x4) for the dense layers: about 4x the JS loops' throughput on the
// d x 64 first layer that dominates a gradient. Their source is value-function-kernels.wat
// (WebAssembly text, compiled by wabt at build time into value-function-kernels.wasm.ts); they
// are used when the runtime supports wasm SIMD (Node >= 16), otherwise the float64 JS loops above
// run. Both are checked against a plain implementation and against tfjs in the tests.

/** The exports of value-function-kernels.wat (see the comments there). */
interface SimdExports {
  scaled(srcPtr: number, subPtr: number, mulPtr: number, dstPtr: number, pairs: number): void;
  fwd(inPtr: number, wPtr: number, bPtr: number, outPtr: number, ninBytes: number, nout: number, relu: number): void;
  bwd(
    upPtr: number,
    wPtr: number,
    nextPtr: number,
    ninBytes: number,
    nout: number,
    actPtr: number,
    masked: number,
    listPtr: number,
  ): void;
}

/** The parts of the WebAssembly API used here (the project's TypeScript lib has no DOM types). */
export interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer; grow(pages: number): number };
}
export type WasmModule = { readonly __wasmModule?: never };

/** The runtime's WebAssembly API, or undefined where there is none. */
export function wasmApi(): WasmApi | undefined {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
}

let simdModule: WasmModule | null | undefined;

/** The compiled kernel module, or null where WebAssembly or its SIMD instructions are unavailable. */
export function simdKernels(): WasmModule | null {
  if (simdModule !== undefined) return simdModule;
  try {
    const wasm = wasmApi();
    simdModule = wasm ? new wasm.Module(Uint8Array.from(atob(WASM_BASE64), (c) => c.charCodeAt(0))) : null;
  } catch {
    simdModule = null;
  }
  return simdModule;
}

/** Rows and vectors are padded with zeros to a multiple of 8 floats (the forward kernel reads 8 a step). */
const pad8 = (n: number): number => (n + 7) & ~7;
/** Weight rows come in fours (the forward kernel computes four units a step); extra rows are zero. */
const pad4 = (n: number): number => (n + 3) & ~3;

interface SimdLayer {
  /** Byte offsets in the kernel memory (16-byte aligned). */
  w: number;
  b: number;
  act: number;
  nin: number;
  ninBytes: number;
  nout: number;
}

/** The value function's layers in one wasm memory, evaluated with the f32x4 kernels. */
class SimdPath {
  private readonly f32: Float32Array;
  private readonly k: SimdExports;
  private readonly members: SimdLayer[][];
  private readonly x: number;
  private readonly gradA: number;
  private readonly gradB: number;
  /** Scratch of the backward kernel: (row address, gradient) per unit. */
  private readonly list: number;
  /** The input normalisation as float64s (padding: 0), zeros, and a float32 row of staging. */
  private readonly mean: number;
  private readonly invStd: number;
  private readonly zeros: number;
  private readonly stage: number;
  /** Pairs of float32s in a row of d (the last pair reads and writes one float of padding when d is odd). */
  private readonly pairs: number;

  constructor(
    module: WasmModule,
    checkpoint: ValueFunctionCheckpoint,
    private readonly d: number,
    maxWidth: number,
    normalisation: { mean: Float64Array; invStd: Float64Array },
  ) {
    let bytes = 0;
    const alloc = (floats: number) => {
      const at = bytes;
      bytes += pad8(floats) * 4;
      return at;
    };
    this.members = checkpoint.members.map((m) =>
      m.layers.map((l) => ({
        w: alloc(pad4(l.out) * pad8(l.in)),
        b: alloc(l.out),
        act: alloc(l.out),
        nin: l.in,
        ninBytes: pad8(l.in) * 4,
        nout: l.out,
      })),
    );
    this.x = alloc(this.d);
    this.gradA = alloc(maxWidth);
    this.gradB = alloc(maxWidth);
    this.list = alloc(2 * maxWidth);
    this.mean = alloc(2 * d);
    this.invStd = alloc(2 * d);
    this.zeros = alloc(2 * d);
    this.stage = alloc(d);
    this.pairs = (d + 1) >> 1;
    const wasm = wasmApi();
    if (wasm === undefined) throw new Error('WebAssembly is not available');
    const memory = new wasm.Memory({ initial: Math.ceil(bytes / 65536) + 1 });
    this.k = new wasm.Instance(module, { env: { memory } }).exports as SimdExports;
    this.f32 = new Float32Array(memory.buffer);
    const f64 = new Float64Array(memory.buffer);
    f64.set(normalisation.mean, this.mean / 8);
    f64.set(normalisation.invStd, this.invStd / 8);
    for (const [m, member] of checkpoint.members.entries()) {
      for (const [li, l] of member.layers.entries()) {
        const s = (this.members[m] as SimdLayer[])[li] as SimdLayer;
        const row = pad8(l.in);
        for (let j = 0; j < l.out; j++) {
          for (let i = 0; i < l.in; i++) this.f32[s.w / 4 + j * row + i] = l.weights[i * l.out + j] as number;
        }
        this.f32.set(l.bias, s.b / 4);
      }
    }
  }

  /**
   * Sum over members of the network outputs at the input phis[offset, offset + d), normalised
   * in the module (`scaled`: the same double arithmetic as the JS loop, two values a step).
   */
  forward(phis: Float32Array, offset: number): number {
    const f32 = this.f32;
    const d = this.d;
    f32.set(offset === 0 && phis.length === d ? phis : phis.subarray(offset, offset + d), this.stage / 4);
    this.k.scaled(this.stage, this.mean, this.invStd, this.x, this.pairs);
    let sum = 0;
    for (const layers of this.members) {
      let input = this.x;
      const last = layers.length - 1;
      for (let li = 0; li <= last; li++) {
        const l = layers[li] as SimdLayer;
        this.k.fwd(input, l.w, l.b, l.act, l.ninBytes, l.nout, li < last ? 1 : 0);
        input = l.act;
      }
      sum += f32[input / 4] as number;
    }
    return sum;
  }

  /**
   * Writes scale * d(sum of outputs)/d(phi) of the last forward into out[at, at + d): back
   * through each member to the normalised input, summed over members (in `total`, d float64s,
   * when there are several), times invStd (in the module, `scaled`, for a single member).
   */
  backward(scale: number, invStd: Float64Array, out: Float32Array, at: number, total: Float64Array): void {
    const f32 = this.f32;
    const d = this.d;
    const single = this.members.length === 1;
    if (!single) total.fill(0);
    for (const layers of this.members) {
      let up = this.gradA;
      let next = this.gradB;
      f32[up / 4] = scale;
      for (let li = layers.length - 1; li >= 0; li--) {
        const l = layers[li] as SimdLayer;
        // Back through this layer's ReLU (all but the last layer) and its weights.
        this.k.bwd(up, l.w, next, l.ninBytes, l.nout, l.act, li < layers.length - 1 ? 1 : 0, this.list);
        const t = up;
        up = next;
        next = t;
      }
      if (single) {
        this.k.scaled(up, this.zeros, this.invStd, this.stage, this.pairs);
        out.set(f32.subarray(this.stage / 4, this.stage / 4 + d), at);
        return;
      }
      const u = up / 4;
      for (let i = 0; i < d; i++) total[i] = (total[i] as number) + (f32[u + i] as number);
    }
    for (let i = 0; i < d; i++) out[at + i] = (total[i] as number) * (invStd[i] as number);
  }
}
