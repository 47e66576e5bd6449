/**
 * Dense-layer kernels on plain typed arrays, shared by the value function's serving path
 * (`CompiledValueFunction`'s JS loops, one row at a time) and its training
 * (`ValueFunctionNetF32`, a batch of rows per step).
 *
 * Layout: rows are row-major ([rows][width]). The forward pass reads the weights as [in][out]
 * (row i: input i's fan-out); the backward passes read and write them transposed, [out][in]
 * (row j: unit j's fan-in), so every inner loop runs over contiguous memory.
 *
 * ReLU zeroes about half of every hidden activation and of every gradient flowing back through
 * it; each kernel first lists a row's (or column's) non-zeros and works on those only, four or
 * eight at a time so that one load serves several multiply-adds.
 * Arithmetic is float64: V8 keeps doubles in registers without a float32 conversion on every
 * access, and the results are at least as accurate as tfjs's float32 (parameters themselves are
 * kept as float32 values by their owners).
 */

/** Scratch lists of non-zeros (index, value), grown on demand; the kernels do not nest. */
let listIndex = new Int32Array(64);
let listValue = new Float64Array(64);
function ensureList(n: number): void {
  if (listIndex.length >= n) return;
  listIndex = new Int32Array(n);
  listValue = new Float64Array(n);
}

/** out[r][j] = act(b[j] + sum_i x[r][i] * w[i][j]) for r < rows; act = ReLU when relu. */
export function denseForward(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array,
  nin: number,
  nout: number,
  rows: number,
  relu: boolean,
  out: Float64Array,
): void {
  ensureList(nin);
  const at = listIndex;
  const val = listValue;
  for (let r = 0; r < rows; r++) {
    const xo = r * nin;
    const oo = r * nout;
    // The row's non-zero inputs: offsets of their fan-out rows, and values.
    let n = 0;
    for (let i = 0; i < nin; i++) {
      const v = x[xo + i] as number;
      if (v === 0) continue;
      at[n] = i * nout;
      val[n] = v;
      n++;
    }
    let j = 0;
    // Eight units a step: each input value is loaded once for eight weights.
    for (; j + 7 < nout; j += 8) {
      let s0 = b[j] as number;
      let s1 = b[j + 1] as number;
      let s2 = b[j + 2] as number;
      let s3 = b[j + 3] as number;
      let s4 = b[j + 4] as number;
      let s5 = b[j + 5] as number;
      let s6 = b[j + 6] as number;
      let s7 = b[j + 7] as number;
      for (let k = 0; k < n; k++) {
        const v = val[k] as number;
        const o = (at[k] as number) + j;
        s0 += v * (w[o] as number);
        s1 += v * (w[o + 1] as number);
        s2 += v * (w[o + 2] as number);
        s3 += v * (w[o + 3] as number);
        s4 += v * (w[o + 4] as number);
        s5 += v * (w[o + 5] as number);
        s6 += v * (w[o + 6] as number);
        s7 += v * (w[o + 7] as number);
      }
      out[oo + j] = relu && s0 < 0 ? 0 : s0;
      out[oo + j + 1] = relu && s1 < 0 ? 0 : s1;
      out[oo + j + 2] = relu && s2 < 0 ? 0 : s2;
      out[oo + j + 3] = relu && s3 < 0 ? 0 : s3;
      out[oo + j + 4] = relu && s4 < 0 ? 0 : s4;
      out[oo + j + 5] = relu && s5 < 0 ? 0 : s5;
      out[oo + j + 6] = relu && s6 < 0 ? 0 : s6;
      out[oo + j + 7] = relu && s7 < 0 ? 0 : s7;
    }
    for (; j < nout; j++) {
      let s = b[j] as number;
      for (let k = 0; k < n; k++) s += (val[k] as number) * (w[(at[k] as number) + j] as number);
      out[oo + j] = relu && s < 0 ? 0 : s;
    }
  }
}

/**
 * Back through a dense layer to its input: dx[r][i] = sum_j up[r][j] * wT[j][i], where up is
 * the gradient with respect to the layer's pre-activations. With `below` (the layer below's ReLU
 * outputs), dx is also taken back through that ReLU: zero where below[r][i] <= 0.
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
      if (u === 0) continue;
      at[n] = j * nin;
      val[n] = u;
      n++;
    }
    dx.fill(0, xo, xo + nin);
    let k = 0;
    // Four fan-in rows a step: each dx entry is loaded and stored once for four multiply-adds.
    for (; k + 3 < n; k += 4) {
      const u0 = val[k] as number;
      const u1 = val[k + 1] as number;
      const u2 = val[k + 2] as number;
      const u3 = val[k + 3] as number;
      const a0 = at[k] as number;
      const a1 = at[k + 1] as number;
      const a2 = at[k + 2] as number;
      const a3 = at[k + 3] as number;
      for (let i = 0; i < nin; i++) {
        dx[xo + i] =
          (dx[xo + i] as number) +
          u0 * (wT[a0 + i] as number) +
          u1 * (wT[a1 + i] as number) +
          u2 * (wT[a2 + i] as number) +
          u3 * (wT[a3 + i] as number);
      }
    }
    for (; k < n; k++) {
      const u = val[k] as number;
      const a = at[k] as number;
      for (let i = 0; i < nin; i++) dx[xo + i] = (dx[xo + i] as number) + u * (wT[a + i] as number);
    }
    if (below !== undefined) for (let i = 0; i < nin; i++) if ((below[xo + i] as number) <= 0) dx[xo + i] = 0;
  }
}

/**
 * Parameter gradients of a dense layer, accumulated over rows: gWT[j][i] += sum_r up[r][j] x[r][i]
 * and gB[j] += sum_r up[r][j].
 */
export function denseParamGradients(
  x: Float64Array,
  up: Float64Array,
  nin: number,
  nout: number,
  rows: number,
  gWT: Float64Array,
  gB: Float64Array,
): void {
  ensureList(rows);
  const at = listIndex;
  const val = listValue;
  for (let j = 0; j < nout; j++) {
    // The rows where unit j has a gradient: offsets of their inputs, and gradients.
    let n = 0;
    let sum = 0;
    for (let r = 0; r < rows; r++) {
      const u = up[r * nout + j] as number;
      if (u === 0) continue;
      at[n] = r * nin;
      val[n] = u;
      sum += u;
      n++;
    }
    gB[j] = (gB[j] as number) + sum;
    const g = j * nin;
    let k = 0;
    // Four rows a step: each gradient entry is loaded and stored once for four multiply-adds.
    for (; k + 3 < n; k += 4) {
      const u0 = val[k] as number;
      const u1 = val[k + 1] as number;
      const u2 = val[k + 2] as number;
      const u3 = val[k + 3] as number;
      const a0 = at[k] as number;
      const a1 = at[k + 1] as number;
      const a2 = at[k + 2] as number;
      const a3 = at[k + 3] as number;
      for (let i = 0; i < nin; i++) {
        gWT[g + i] =
          (gWT[g + i] as number) +
          u0 * (x[a0 + i] as number) +
          u1 * (x[a1 + i] as number) +
          u2 * (x[a2 + i] as number) +
          u3 * (x[a3 + i] as number);
      }
    }
    for (; k < n; k++) {
      const u = val[k] as number;
      const a = at[k] as number;
      for (let i = 0; i < nin; i++) gWT[g + i] = (gWT[g + i] as number) + u * (x[a + i] as number);
    }
  }
}
