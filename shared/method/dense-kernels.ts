/**
 * Dense-layer kernels on plain typed arrays: the value function's serving path where the
 * runtime has no WebAssembly SIMD (`CompiledValueFunction`'s JS loops, one row at a time).
 * Training runs on the SIMD kernels of value-function-kernels.wat (`ValueFunctionNetF32`).
 *
 * Layout: rows are row-major ([rows][width]); weights are transposed, [out][in] (row j: unit
 * j's fan-in), so every inner loop runs over contiguous memory.
 *
 * ReLU zeroes about half of every gradient flowing back through it: the backward kernels first
 * list a row's (or column's) non-zeros and work on those only, four at a time so that one load
 * serves several multiply-adds. The forward pass is dense, blocked over rows and units.
 * Arithmetic is float64: V8 keeps doubles in registers without a float32 conversion on every
 * access, and the results are at least as accurate as tfjs's float32 (parameters themselves are
 * kept as float32 values by their owners).
 */

/**
 * 1 or 0 without a branch (the lists below are built by always writing the next slot and
 * advancing by this): which units ReLU left active is a coin flip the branch predictor loses,
 * and a mispredicted branch per entry cost 5x the branch-free loop (measured).
 */
const bit = (b: boolean): number => (b as unknown as number) | 0;

/** Scratch lists of non-zeros (index, value), grown on demand; the kernels do not nest. */
let listIndex = new Int32Array(64);
let listValue = new Float64Array(64);
function ensureList(n: number): void {
  if (listIndex.length >= n) return;
  listIndex = new Int32Array(n);
  listValue = new Float64Array(n);
}

/**
 * max(v, 0) without a branch: (v + |v|) / 2 is exact. A ReLU's sign is a coin flip the branch
 * predictor loses (measured: a compare-and-branch per output cost as much as the dot products
 * of a 17-input layer).
 */
const relu0 = (v: number): number => (v + Math.abs(v)) * 0.5;

/** out[r][j] = act(b[j] + sum_i x[r][i] * wT[j][i]) for r < rows; act = ReLU when relu. */
export function denseForward(
  x: Float64Array,
  wT: Float64Array,
  b: Float64Array,
  nin: number,
  nout: number,
  rows: number,
  relu: boolean,
  out: Float64Array,
): void {
  let r = 0;
  // Two rows and four units a step: eight dot products, each load serving two or four of them.
  // (Dense beats listing the non-zeros here: measured 1.2-2x on this batch's layers.)
  for (; r + 1 < rows; r += 2) {
    const x0 = r * nin;
    const x1 = x0 + nin;
    const o0 = r * nout;
    const o1 = o0 + nout;
    let j = 0;
    for (; j + 3 < nout; j += 4) {
      const w0 = j * nin;
      const w1 = w0 + nin;
      const w2 = w1 + nin;
      const w3 = w2 + nin;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let t0 = 0;
      let t1 = 0;
      let t2 = 0;
      let t3 = 0;
      for (let i = 0; i < nin; i++) {
        const xi = x[x0 + i] as number;
        const yi = x[x1 + i] as number;
        const a0 = wT[w0 + i] as number;
        const a1 = wT[w1 + i] as number;
        const a2 = wT[w2 + i] as number;
        const a3 = wT[w3 + i] as number;
        s0 += xi * a0;
        s1 += xi * a1;
        s2 += xi * a2;
        s3 += xi * a3;
        t0 += yi * a0;
        t1 += yi * a1;
        t2 += yi * a2;
        t3 += yi * a3;
      }
      s0 += b[j] as number;
      s1 += b[j + 1] as number;
      s2 += b[j + 2] as number;
      s3 += b[j + 3] as number;
      t0 += b[j] as number;
      t1 += b[j + 1] as number;
      t2 += b[j + 2] as number;
      t3 += b[j + 3] as number;
      out[o0 + j] = relu ? relu0(s0) : s0;
      out[o0 + j + 1] = relu ? relu0(s1) : s1;
      out[o0 + j + 2] = relu ? relu0(s2) : s2;
      out[o0 + j + 3] = relu ? relu0(s3) : s3;
      out[o1 + j] = relu ? relu0(t0) : t0;
      out[o1 + j + 1] = relu ? relu0(t1) : t1;
      out[o1 + j + 2] = relu ? relu0(t2) : t2;
      out[o1 + j + 3] = relu ? relu0(t3) : t3;
    }
    for (; j < nout; j++) {
      const w0 = j * nin;
      let s = b[j] as number;
      let t = s;
      for (let i = 0; i < nin; i++) {
        s += (x[x0 + i] as number) * (wT[w0 + i] as number);
        t += (x[x1 + i] as number) * (wT[w0 + i] as number);
      }
      out[o0 + j] = relu ? relu0(s) : s;
      out[o1 + j] = relu ? relu0(t) : t;
    }
  }
  // The last row of an odd count (and serving's single row): one dot product per unit.
  for (; r < rows; r++) {
    const x0 = r * nin;
    const o0 = r * nout;
    for (let j = 0; j < nout; j++) {
      const w0 = j * nin;
      // Two accumulators break the add dependency chain.
      let s0 = 0;
      let s1 = 0;
      let i = 0;
      for (; i + 1 < nin; i += 2) {
        s0 += (x[x0 + i] as number) * (wT[w0 + i] as number);
        s1 += (x[x0 + i + 1] as number) * (wT[w0 + i + 1] as number);
      }
      if (i < nin) s0 += (x[x0 + i] as number) * (wT[w0 + i] as number);
      const v = (b[j] as number) + s0 + s1;
      out[o0 + j] = relu ? relu0(v) : v;
    }
  }
}

/**
 * Back through a dense layer to its input: dx[r][i] = sum_j up[r][j] * wT[j][i], where up is
 * the gradient with respect to the layer's pre-activations. With `below` (the layer below's
 * ReLU outputs), dx is also taken back through that ReLU: zero where below[r][i] <= 0.
 */
export function denseBackward(
  up: Float64Array,
  wT: Float64Array,
  nin: number,
  nout: number,
  rows: number,
  below: Float64Array | undefined,
  dx: Float64Array,
): void {
  ensureList(nout);
  const at = listIndex;
  const val = listValue;
  for (let r = 0; r < rows; r++) {
    const xo = r * nin;
    const uo = r * nout;
    // The units with a gradient: offsets of their fan-in rows, and gradients.
    let n = 0;
    for (let j = 0; j < nout; j++) {
      const u = up[uo + j] as number;
      at[n] = j * nin;
      val[n] = u;
      n += bit(u !== 0);
    }
    dx.fill(0, xo, xo + nin);
    addWeightedRows(dx, xo, wT, at, val, n, nin);
    if (below !== undefined) for (let i = 0; i < nin; i++) if ((below[xo + i] as number) <= 0) dx[xo + i] = 0;
  }
}

/**
 * dst[off + i] += sum_k val[k] * src[at[k] + i] for i < len: the rows of `src` that start at
 * `at[0..n)`, weighted and added into one row of `dst`. Four rows a step, so each dst entry is
 * loaded and stored once for four multiply-adds (same order of additions as one at a time).
 */
function addWeightedRows(
  dst: Float64Array,
  off: number,
  src: Float64Array,
  at: Int32Array,
  val: Float64Array,
  n: number,
  len: number,
): void {
  let k = 0;
  for (; k + 3 < n; k += 4) {
    const u0 = val[k] as number;
    const u1 = val[k + 1] as number;
    const u2 = val[k + 2] as number;
    const u3 = val[k + 3] as number;
    const a0 = at[k] as number;
    const a1 = at[k + 1] as number;
    const a2 = at[k + 2] as number;
    const a3 = at[k + 3] as number;
    for (let i = 0; i < len; i++) {
      dst[off + i] =
        (dst[off + i] as number) +
        u0 * (src[a0 + i] as number) +
        u1 * (src[a1 + i] as number) +
        u2 * (src[a2 + i] as number) +
        u3 * (src[a3 + i] as number);
    }
  }
  for (; k < n; k++) {
    const u = val[k] as number;
    const a = at[k] as number;
    for (let i = 0; i < len; i++) dst[off + i] = (dst[off + i] as number) + u * (src[a + i] as number);
  }
}
