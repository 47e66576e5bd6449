#!/usr/bin/env node
// The value-function training kernels (value-function-kernels.wat: mm, mmTN, colSum, reluMask)
// one by one at the default step's shapes (tuned recipe: 1,664 rows, 17-64-32-32-16-1), CPU ms
// per call (process.cpuUsage, median of 5 rounds of 200 calls) and GFLOP/s: how close a step's
// arithmetic runs to the machine's f32x4 limit, and what one step's kernels cost in all.
//   npm run build && nice -n 10 node bench/train-kernels.mjs
import { simdKernels } from '../dist/shared/method/value-function-wasm.js';

const module = simdKernels();
if (!module) throw new Error('no WebAssembly SIMD here');
const memory = new WebAssembly.Memory({ initial: 200 });
const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
const f = new Float32Array(memory.buffer);
for (let i = 0; i < 3_000_000; i++) f[i] = Math.random() - 0.5;
const rows = 1664;
const [A, B, C, bias] = [0, 4_000_000, 8_000_000, 11_600_000];
const pad8 = (n) => (n + 7) & ~7;

function cpuMs(fn) {
  for (let i = 0; i < 50; i++) fn();
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < 200; i++) fn();
    const u = process.cpuUsage(c0);
    rounds.push((u.user + u.system) / 1000 / 200);
  }
  return rounds.sort((a, b) => a - b)[2];
}

const widths = [17, 64, 32, 32, 16, 1];
const calls = [];
for (let l = 0; l + 1 < widths.length; l++) {
  const [nin, nout] = [widths[l], widths[l + 1]];
  const [pin, pout] = [pad8(nin), pad8(nout)];
  calls.push([
    `forward ${nin}x${nout} (mm)`,
    () => k.mm(A, pin * 4, B, pout * 4, bias, C, pout * 4, rows, nin, pout * 4, 1),
    2 * rows * nin * nout,
  ]);
  calls.push([
    `weight grad ${nin}x${nout} (mmTN)`,
    () => k.mmTN(A, pin * 4, B, pout * 4, C, pout * 4, rows, (nin + 3) & ~3, pout * 4),
    2 * rows * nin * nout,
  ]);
  calls.push([`bias grad ${nout} (colSum)`, () => k.colSum(B, pout * 4, C, rows, pout * 4), rows * nout]);
  if (l > 0) {
    calls.push([
      `back to input ${nout}->${nin} (mm)`,
      () => k.mm(B, pout * 4, A, pin * 4, bias, C, pin * 4, rows, nout, pin * 4, 0),
      2 * rows * nin * nout,
    ]);
    calls.push([`ReLU mask ${nin} (reluMask)`, () => k.reluMask(C, A, rows * pin * 4), rows * nin]);
  }
}
let total = 0;
let flops = 0;
console.log(`${rows} rows; CPU ms per call (median of 5 x 200), GFLOP/s`);
for (const [name, fn, n] of calls) {
  const ms = cpuMs(fn);
  total += ms;
  flops += n;
  console.log(`  ${name.padEnd(30)} ${ms.toFixed(4)}  ${(n / ms / 1e6).toFixed(1)}`);
}
console.log(
  `one step's kernels: ${total.toFixed(3)} ms, ${(flops / 1e6).toFixed(1)} MFLOP, ${(flops / total / 1e6).toFixed(1)} GFLOP/s`,
);
