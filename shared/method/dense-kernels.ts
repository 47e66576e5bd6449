/**
 * Dense-layer kernels on plain typed arrays, shared by the value function's serving path
 * (`CompiledValueFunction`'s JS loops, one row at a time) and its training
 * (`ValueFunctionTrainer`, a batch of rows per step).
 *
 * Layout: rows are row-major ([rows][width]); weights are transposed, [out][in], so that row j
 * is the fan-in of unit j (forward dot products, backward axpys over contiguous memory).
 * Arithmetic is float64: V8 keeps doubles in registers without a float32 conversion on every
 * access, and the results are at least as accurate as tfjs's float32 (parameters themselves are
 * kept as float32 values by their owners).
 */

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
  for (let r = 0; r < rows; r++) {
    const xo = r * nin;
    const oo = r * nout;
    let j = 0;
    // Four units a step: each input is loaded once for four fan-in rows.
    for (; j + 3 < nout; j += 4) {
      const w0 = j * nin;
      const w1 = w0 + nin;
      const w2 = w1 + nin;
      const w3 = w2 + nin;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < nin; i++) {
        const xi = x[xo + i] as number;
        s0 += xi * (wT[w0 + i] as number);
        s1 += xi * (wT[w1 + i] as number);
        s2 += xi * (wT[w2 + i] as number);
        s3 += xi * (wT[w3 + i] as number);
      }
      s0 += b[j] as number;
      s1 += b[j + 1] as number;
      s2 += b[j + 2] as number;
      s3 += b[j + 3] as number;
      out[oo + j] = relu && s0 < 0 ? 0 : s0;
      out[oo + j + 1] = relu && s1 < 0 ? 0 : s1;
      out[oo + j + 2] = relu && s2 < 0 ? 0 : s2;
      out[oo + j + 3] = relu && s3 < 0 ? 0 : s3;
    }
    for (; j < nout; j++) {
      const w0 = j * nin;
      // Two accumulators break the add dependency chain.
      let s0 = 0;
      let s1 = 0;
      let i = 0;
      for (; i + 1 < nin; i += 2) {
        s0 += (x[xo + i] as number) * (wT[w0 + i] as number);
        s1 += (x[xo + i + 1] as number) * (wT[w0 + i + 1] as number);
      }
      if (i < nin) s0 += (x[xo + i] as number) * (wT[w0 + i] as number);
      const v = (b[j] as number) + s0 + s1;
      out[oo + j] = relu && v < 0 ? 0 : v;
    }
  }
}

/**
 * Back through a dense layer to its input: dx[r][i] = sum_j up[r][j] * wT[j][i], where up is
 * the gradient with respect to the layer's pre-activations. Units with no gradient (ReLU zeroes
 * about half) are skipped. With `below` (the layer below's ReLU outputs), dx is also taken back
 * through that ReLU: zero where below[r][i] <= 0.
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
  for (let r = 0; r < rows; r++) {
    const xo = r * nin;
    const uo = r * nout;
    dx.fill(0, xo, xo + nin);
    for (let j = 0; j < nout; j++) {
      const u = up[uo + j] as number;
      if (u === 0) continue;
      const w0 = j * nin;
      for (let i = 0; i < nin; i++) dx[xo + i] = (dx[xo + i] as number) + u * (wT[w0 + i] as number);
    }
    if (below !== undefined) for (let i = 0; i < nin; i++) if ((below[xo + i] as number) <= 0) dx[xo + i] = 0;
  }
}

/**
 * Parameter gradients of a dense layer, accumulated over rows: gWT[j][i] += sum_r up[r][j] x[r][i]
 * and gB[j] += sum_r up[r][j] (rows whose unit has no gradient are skipped).
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
  for (let r = 0; r < rows; r++) {
    const xo = r * nin;
    const uo = r * nout;
    for (let j = 0; j < nout; j++) {
      const u = up[uo + j] as number;
      if (u === 0) continue;
      gB[j] = (gB[j] as number) + u;
      const w0 = j * nin;
      for (let i = 0; i < nin; i++) gWT[w0 + i] = (gWT[w0 + i] as number) + u * (x[xo + i] as number);
    }
  }
}
