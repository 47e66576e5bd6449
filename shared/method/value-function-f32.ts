import type { ValueFunctionCheckpoint } from '../schemas/checkpoint.js';
import { denseBackward, denseForward } from './dense-kernels.js';
import { SimdPath } from './value-function-simd-path.js';
import { simdKernels } from './value-function-wasm.js';

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
