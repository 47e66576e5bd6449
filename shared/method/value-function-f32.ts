import type { ValueFunctionCheckpoint } from '../schemas/checkpoint.js';
import { slabFloat32 } from '../util/slab.js';

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
  /** Weights transposed, [out][in]: row j is the fan-in of unit j (forward dot products, backward axpys). */
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
 * The forward pass is one dot product per unit over transposed weights; the backward pass adds
 * the fan-in row of each unit with a non-zero gradient (ReLU zeroes about half), so a gradient
 * costs well under two forward passes. The SIMD path accumulates in float32 like tfjs; the JS
 * path in float64 (V8 keeps doubles in registers without float32 conversions on every access).
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
    this.simd = module ? new SimdPath(module, checkpoint, this.d, this.maxWidth) : undefined;
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
  predict(phis: Float32Array, n: number, out = slabFloat32(n)): Float32Array {
    for (let r = 0; r < n; r++) out[r] = this.forwardOne(phis, r * this.d);
    return out;
  }

  /** Normalised values and gradients (row-major n x d) for n rows of phi. */
  predictWithGradients(
    phis: Float32Array,
    n: number,
    values = slabFloat32(n),
    gradients = slabFloat32(n * this.d),
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
      return (
        this.tMean + (this.tStd * this.simd.forward(phis, offset, this.inMean, this.inInvStd)) / this.members.length
      );
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
        for (let j = 0; j < nout; j++) {
          const base = j * nin;
          // Four accumulators break the add dependency chain (about 20% faster than one).
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          let i = 0;
          for (; i + 3 < nin; i += 4) {
            s0 += (input[i] as number) * (wT[base + i] as number);
            s1 += (input[i + 1] as number) * (wT[base + i + 1] as number);
            s2 += (input[i + 2] as number) * (wT[base + i + 2] as number);
            s3 += (input[i + 3] as number) * (wT[base + i + 3] as number);
          }
          for (; i < nin; i++) s0 += (input[i] as number) * (wT[base + i] as number);
          const v = (b[j] as number) + (s0 + s1) + (s2 + s3);
          a[j] = li < last && v < 0 ? 0 : v;
        }
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
        // d value / d (input of layer li) = sum over units j with a gradient of upstream[j] * fan-in row j.
        next.fill(0, 0, nin);
        for (let j = 0; j < nout; j++) {
          const u = upstream[j] as number;
          if (u === 0) continue;
          const base = j * nin;
          let i = 0;
          for (; i + 3 < nin; i += 4) {
            next[i] = (next[i] as number) + u * (wT[base + i] as number);
            next[i + 1] = (next[i + 1] as number) + u * (wT[base + i + 1] as number);
            next[i + 2] = (next[i + 2] as number) + u * (wT[base + i + 2] as number);
            next[i + 3] = (next[i + 3] as number) + u * (wT[base + i + 3] as number);
          }
          for (; i < nin; i++) next[i] = (next[i] as number) + u * (wT[base + i] as number);
        }
        if (li > 0) {
          // Through the ReLU of the layer below: no gradient where it was inactive.
          const below = acts[li - 1] as Float64Array;
          for (let i = 0; i < nin; i++) if ((below[i] as number) <= 0) next[i] = 0;
        }
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
// d x 64 first layer that dominates a gradient. The module is assembled here from its opcodes
// (no toolchain, no binary file to ship) and used when the runtime supports wasm SIMD (Node >= 16);
// otherwise the float64 JS loops above run. Both are checked against a plain implementation
// and against tfjs in the tests.

/**
 * fwd(in, wT, b, out, ninBytes, nout, relu): out[j] = act(b[j] + sum_i in[i] wT[j][i]), rows of wT
 * padded with zeros to a multiple of 8 floats.
 * bwd(up, wT, next, ninBytes, nout, act, masked): next = sum_j up[j] wT[j] over the units with
 * up[j] != 0 and, when masked, an active ReLU (act[j] > 0): back through a layer and its ReLU.
 */
interface SimdExports {
  fwd(inPtr: number, wPtr: number, bPtr: number, outPtr: number, ninBytes: number, nout: number, relu: number): void;
  bwd(
    upPtr: number,
    wPtr: number,
    nextPtr: number,
    ninBytes: number,
    nout: number,
    actPtr: number,
    masked: number,
  ): void;
}

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

// Opcodes used below.
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const tee = (i: number) => [0x22, i];
const i32c = (v: number) => [0x41, ...sleb(v)];
const f32zero = [0x43, 0, 0, 0, 0];
const block = [0x02, 0x40];
const loop = [0x03, 0x40];
const ifThen = [0x04, 0x40];
const end = [0x0b];
const brIf = (depth: number) => [0x0d, depth];
const i32Eqz = [0x45];
const i32LtU = [0x49];
const i32Add = [0x6a];
const i32Mul = [0x6c];
const i32Shl = [0x74];
const f32Load = [0x2a, 2, 0];
const f32Store = [0x38, 2, 0];
const f32Add = [0x92];
const f32Max = [0x97];
const f32Ne = [0x5c];
const f32Gt = [0x5e];
const i32And = [0x71];
const i32Or = [0x72];
const v128Load = [0xfd, 0x00, 4, 0];
const v128LoadAt = (offset: number) => [0xfd, 0x00, 4, ...uleb(offset)];
const v128Store = [0xfd, 0x0b, 4, 0];
const f32x4Splat = [0xfd, 0x13];
const f32x4Lane = (lane: number) => [0xfd, 0x1f, lane];
const f32x4Add = [0xfd, 0xe4, 0x01];
const f32x4Mul = [0xfd, 0xe6, 0x01];

/** `i += 16; if (i < limit) continue` at the end of a loop over 16-byte lanes. */
const nextLanes = (i: number, limit: number) => [
  ...get(i),
  ...i32c(16),
  ...i32Add,
  ...tee(i),
  ...get(limit),
  ...i32LtU,
  ...brIf(0),
];
/** base + j * 4 */
const at4 = (base: number, j: number) => [...get(base), ...get(j), ...i32c(2), ...i32Shl, ...i32Add];

function fwdBody(): number[] {
  // params: 0 in, 1 w, 2 b, 3 out, 4 ninBytes (a multiple of 32), 5 nout, 6 relu;
  // locals: 7 j, 8 i, 9 row, 10 acc (v128), 11 s (f32), 12 acc2 (v128)
  const [IN, W, B, OUT, NINB, NOUT, RELU, J, I, ROW, ACC, S, ACC2] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  // biome-ignore format: one wasm instruction group per line reads like the assembly it is
  const code = [
    ...i32c(0), ...set(J),
    ...block,
    ...get(NOUT), ...i32Eqz, ...brIf(0),
    ...loop,
    ...f32zero, ...f32x4Splat, ...set(ACC),
    ...i32c(0), ...set(I),
    ...get(W), ...get(J), ...get(NINB), ...i32Mul, ...i32Add, ...set(ROW),
    ...block,
    ...get(NINB), ...i32Eqz, ...brIf(0),
    ...f32zero, ...f32x4Splat, ...set(ACC2),
    ...loop,
    // two accumulators, 8 floats a step: the adds do not wait on each other
    ...get(ACC),
    ...get(IN), ...get(I), ...i32Add, ...v128Load,
    ...get(ROW), ...get(I), ...i32Add, ...v128Load,
    ...f32x4Mul, ...f32x4Add, ...set(ACC),
    ...get(ACC2),
    ...get(IN), ...get(I), ...i32Add, ...v128LoadAt(16),
    ...get(ROW), ...get(I), ...i32Add, ...v128LoadAt(16),
    ...f32x4Mul, ...f32x4Add, ...set(ACC2),
    ...get(I), ...i32c(32), ...i32Add, ...tee(I), ...get(NINB), ...i32LtU, ...brIf(0),
    ...end,
    ...end,
    ...get(ACC), ...get(ACC2), ...f32x4Add, ...set(ACC),
    ...get(ACC), ...f32x4Lane(0),
    ...get(ACC), ...f32x4Lane(1), ...f32Add,
    ...get(ACC), ...f32x4Lane(2), ...f32Add,
    ...get(ACC), ...f32x4Lane(3), ...f32Add,
    ...at4(B, J), ...f32Load, ...f32Add,
    ...set(S),
    ...get(RELU),
    ...ifThen,
    ...get(S), ...f32zero, ...f32Max, ...set(S),
    ...end,
    ...at4(OUT, J), ...get(S), ...f32Store,
    ...get(J), ...i32c(1), ...i32Add, ...tee(J), ...get(NOUT), ...i32LtU, ...brIf(0),
    ...end,
    ...end,
  ];
  return [
    ...vec([
      [3, I32],
      [1, V128],
      [1, F32],
      [1, V128],
    ]),
    ...code,
    ...end,
  ];
}

function bwdBody(): number[] {
  // params: 0 up, 1 w, 2 next, 3 ninBytes, 4 nout, 5 act, 6 masked; locals: 7 j, 8 i, 9 row, 10 uv (v128), 11 u (f32)
  const [UP, W, NEXT, NINB, NOUT, ACT, MASKED, J, I, ROW, UV, U] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  // biome-ignore format: one wasm instruction group per line reads like the assembly it is
  const code = [
    // next = 0
    ...i32c(0), ...set(I),
    ...block,
    ...get(NINB), ...i32Eqz, ...brIf(0),
    ...loop,
    ...get(NEXT), ...get(I), ...i32Add, ...f32zero, ...f32x4Splat, ...v128Store,
    ...nextLanes(I, NINB),
    ...end,
    ...end,
    // next += up[j] * row j, for each j with up[j] != 0
    ...i32c(0), ...set(J),
    ...block,
    ...get(NOUT), ...i32Eqz, ...brIf(0),
    ...loop,
    // u = up[j]; skip the row when u = 0, or when masked and the unit's ReLU was off (act[j] <= 0)
    ...at4(UP, J), ...f32Load, ...tee(U), ...f32zero, ...f32Ne,
    ...get(MASKED), ...i32Eqz, ...at4(ACT, J), ...f32Load, ...f32zero, ...f32Gt, ...i32Or,
    ...i32And,
    ...ifThen,
    ...get(U), ...f32x4Splat, ...set(UV),
    ...get(W), ...get(J), ...get(NINB), ...i32Mul, ...i32Add, ...set(ROW),
    ...i32c(0), ...set(I),
    ...block,
    ...get(NINB), ...i32Eqz, ...brIf(0),
    ...loop,
    ...get(NEXT), ...get(I), ...i32Add,
    ...get(NEXT), ...get(I), ...i32Add, ...v128Load,
    ...get(UV),
    ...get(ROW), ...get(I), ...i32Add, ...v128Load,
    ...f32x4Mul, ...f32x4Add,
    ...v128Store,
    ...nextLanes(I, NINB),
    ...end,
    ...end,
    ...end,
    ...get(J), ...i32c(1), ...i32Add, ...tee(J), ...get(NOUT), ...i32LtU, ...brIf(0),
    ...end,
    ...end,
  ];
  return [
    ...vec([
      [3, I32],
      [1, V128],
      [1, F32],
    ]),
    ...code,
    ...end,
  ];
}

/** The slice of the WebAssembly JS API used here (not in the ES lib this project compiles against). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
}
type WasmModule = { readonly __wasmModule?: never };

let simdModule: WasmModule | null | undefined;

/** The compiled kernel module, or null where wasm SIMD is unavailable. */
function simdKernels(): WasmModule | null {
  if (simdModule !== undefined) return simdModule;
  try {
    // biome-ignore format: module layout, section by section
    const bytes = new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      ...section(1, vec([
        [0x60, ...vec(Array.from({ length: 7 }, () => [I32])), 0],
        [0x60, ...vec(Array.from({ length: 7 }, () => [I32])), 0],
      ])),
      ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
      ...section(3, vec([[0], [1]])),
      ...section(7, vec([[...name('fwd'), 0x00, 0], [...name('bwd'), 0x00, 1]])),
      ...section(10, vec([fwdBody(), bwdBody()].map((b) => [...uleb(b.length), ...b]))),
    ]);
    const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    simdModule = wasm ? new wasm.Module(bytes) : null;
  } catch {
    simdModule = null;
  }
  return simdModule;
}

/** Rows and vectors are padded with zeros to a multiple of 8 floats (the forward kernel reads 8 a step). */
const pad8 = (n: number): number => (n + 7) & ~7;

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

  constructor(
    module: WasmModule,
    checkpoint: ValueFunctionCheckpoint,
    private readonly d: number,
    maxWidth: number,
  ) {
    let bytes = 0;
    const alloc = (floats: number) => {
      const at = bytes;
      bytes += pad8(floats) * 4;
      return at;
    };
    this.members = checkpoint.members.map((m) =>
      m.layers.map((l) => ({
        w: alloc(l.out * pad8(l.in)),
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
    const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly as WasmApi;
    const memory = new wasm.Memory({ initial: Math.ceil(bytes / 65536) + 1 });
    this.k = new wasm.Instance(module, { env: { memory } }).exports as SimdExports;
    this.f32 = new Float32Array(memory.buffer);
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

  /** Sum over members of the network outputs at the input phis[offset, offset + d), normalised. */
  forward(phis: Float32Array, offset: number, mean: Float64Array, invStd: Float64Array): number {
    const f32 = this.f32;
    const x = this.x / 4;
    for (let i = 0; i < this.d; i++) {
      f32[x + i] = ((phis[offset + i] as number) - (mean[i] as number)) * (invStd[i] as number);
    }
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
   * when there are several), times invStd.
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
        this.k.bwd(up, l.w, next, l.ninBytes, l.nout, l.act, li < layers.length - 1 ? 1 : 0);
        const t = up;
        up = next;
        next = t;
      }
      const u = up / 4;
      if (single) {
        for (let i = 0; i < d; i++) out[at + i] = (f32[u + i] as number) * (invStd[i] as number);
        return;
      }
      for (let i = 0; i < d; i++) total[i] = (total[i] as number) + (f32[u + i] as number);
    }
    for (let i = 0; i < d; i++) out[at + i] = (total[i] as number) * (invStd[i] as number);
  }
}
