import { describe, expect, it } from 'vitest';
import { BatchedOptimizer } from '../../shared/method/optimizers.js';
import { ValueFunctionNetF32 } from '../../shared/method/value-function-net-f32.js';
import {
  listStride,
  nonzeroTable,
  type TrainKernels,
  trainKernelModule,
} from '../../shared/method/value-function-net-layout.js';
import { instantiateKernels } from '../../shared/method/value-function-wasm.js';
import { Rng } from '../../shared/util/random.js';

function kernels() {
  const { exports, memory } = instantiateKernels<TrainKernels>(trainKernelModule(), 4 << 20);
  const f = new Float32Array(memory.buffer);
  const table = 0;
  new Uint16Array(memory.buffer).set(nonzeroTable(), table / 2);
  return { k: exports, f, table };
}

/** rows x n floats at byte offset `at`, a fraction `zeros` of them 0 (some -0), the rest normal. */
function fill(f: Float32Array, at: number, rows: number, n: number, zeros: number, rng: Rng): void {
  for (let i = 0; i < rows * n; i++) {
    const u = rng.next();
    f[at / 4 + i] = u < zeros / 2 ? 0 : u < zeros ? -0 : rng.normal();
  }
}

const same = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  // Equal values (a zero's sign aside: skipping a zero term can turn -0 into +0).
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
  return diff;
};

describe('the sparse training kernels (value-function-kernels.wat)', () => {
  const rows = 37;
  const [A, B, C, D, BIAS, LIST] = [4096, 200_000, 400_000, 600_000, 800_000, 900_000];

  it('list each row’s non-zero columns in order, NaN included', () => {
    const { k, f, table } = kernels();
    const rng = new Rng(1);
    const n = 24;
    fill(f, A, rows, n, 0.6, rng);
    f[A / 4 + 5] = Number.NaN;
    const ls = listStride(n);
    k.nonzeros(A, n * 4, rows, n * 4, table, LIST, ls);
    const u16 = new Uint16Array(f.buffer);
    for (let r = 0; r < rows; r++) {
      const want: number[] = [];
      for (let j = 0; j < n; j++) if ((f[A / 4 + r * n + j] as number) !== 0 || r * n + j === 5) want.push(j);
      const at = (LIST + r * ls) / 2;
      expect(Array.from(u16.subarray(at + 1, at + 1 + (u16[at] as number)))).toEqual(want);
    }
  });

  it.each([
    [17, 64, 0],
    [64, 32, 1],
    [32, 32, 1],
    [32, 16, 1],
    [16, 8, 0],
    [32, 64, 0],
  ])('mmS equals the dense mm bit for bit over the listed columns (%i x %i, relu %i)', (nin, nout, relu) => {
    const { k, f, table } = kernels();
    const rng = new Rng(nin * nout + relu);
    const [pin, pout] = [(nin + 7) & ~7, (nout + 7) & ~7];
    fill(f, A, rows, pin, 0.5, rng);
    for (let r = 0; r < rows; r++) f.fill(0, A / 4 + r * pin + nin, A / 4 + (r + 1) * pin);
    fill(f, B, pin, pout, 0, rng);
    fill(f, BIAS, 1, pout, 0, rng);
    k.mm(A, pin * 4, B, pout * 4, BIAS, C, pout * 4, rows, nin, pout * 4, relu);
    const ls = listStride(pin);
    k.nonzeros(A, pin * 4, rows, pin * 4, table, LIST, ls);
    k.mmS(A, pin * 4, LIST, ls, B, pout * 4, BIAS, D, pout * 4, rows, pout * 4, relu);
    const n = rows * pout;
    expect(same(f.slice(C / 4, C / 4 + n), f.slice(D / 4, D / 4 + n))).toBe(0);
  });

  it.each([
    [24, 64],
    [64, 32],
    [32, 32],
    [32, 16],
    [16, 8],
  ])('mmTNS equals the dense mmTN, transposed, bit for bit (%i inputs, %i outputs)', (pin, pout) => {
    const { k, f, table } = kernels();
    const rng = new Rng(pin + pout);
    fill(f, A, rows, pin, 0.3, rng); // the layer's inputs
    fill(f, B, rows, pout, 0.6, rng); // the gradient at its outputs
    f.fill(0, C / 4, C / 4 + pout * pin);
    k.mmTN(A, pin * 4, B, pout * 4, C, pout * 4, rows, pin, pout * 4);
    const ls = listStride(pout);
    k.nonzeros(B, pout * 4, rows, pout * 4, table, LIST, ls);
    f.fill(0, D / 4, D / 4 + pout * pin);
    k.mmTNS(A, pin * 4, B, pout * 4, LIST, ls, D, pin * 4, rows, pin * 4);
    const dense = new Float32Array(pout * pin);
    for (let i = 0; i < pin; i++) for (let j = 0; j < pout; j++) dense[j * pin + i] = f[C / 4 + i * pout + j] as number;
    expect(same(f.slice(D / 4, D / 4 + pout * pin), dense)).toBe(0);
  });
});

describe('ValueFunctionNetF32.adamStep', () => {
  it('takes the steps of BatchedOptimizer’s Adam bit for bit', () => {
    const net = new ValueFunctionNetF32({ d: 5, hidden: [9, 6], batchNorm: false }, 3);
    const params = net.params.slice();
    const opt = new BatchedOptimizer('adam', 0.01, params.length, 0.9, 0.999, 1e-7);
    const rng = new Rng(8);
    for (let step = 0; step < 5; step++) {
      for (let i = 0; i < params.length; i++) net.grads[i] = step === 2 && i % 3 === 0 ? 0 : rng.normal();
      const lr = 0.01 * (1 - step / 10);
      opt.learningRate = lr;
      opt.step(params, net.grads);
      net.adamStep(lr, 0.9, 0.999, 1e-7);
      expect(Array.from(net.params)).toEqual(Array.from(params));
    }
  });
});
