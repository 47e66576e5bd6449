import type { ValueFunctionCheckpoint } from '../schemas/checkpoint.js';
import { instantiateKernels, KernelLayout, pad8, type WasmModule } from './value-function-wasm.js';

// WebAssembly SIMD kernels (f32x4) for the dense layers: about 4x the JS loops' throughput on the
// d x 64 first layer that dominates a gradient. Their source is value-function-kernels.wat
// (WebAssembly text, compiled by wabt at build time into value-function-kernels.wasm.ts); they
// are used by CompiledValueFunction (value-function-f32.ts, one row at a time) when the runtime
// supports wasm SIMD (Node >= 16), otherwise its float64 JS loops run. Both are checked against a
// plain implementation and against tfjs in the tests.

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
export class SimdPath {
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
    const layout = new KernelLayout();
    const alloc = (floats: number) => layout.alloc(floats);
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
    const { exports, memory } = instantiateKernels<SimdExports>(module, layout.bytes);
    this.k = exports;
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
