import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import { WASM_BASE64 } from '../../shared/method/value-function-kernels.wasm.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { Rng } from '../../shared/util/random.js';
import { makeCheckpoint } from '../helpers/make-checkpoint.js';

/** The checkpoint's function written the obvious way in float64, with its gradient by the chain rule. */
function reference(c: ValueFunctionCheckpoint, phi: ArrayLike<number>): { value: number; gradient: number[] } {
  const d = c.d;
  const x = Array.from(
    { length: d },
    (_, i) => ((phi[i] as number) - (c.inputNormalisation.mean[i] as number)) / (c.inputNormalisation.std[i] as number),
  );
  let value = 0;
  const gradient = new Array<number>(d).fill(0);
  for (const member of c.members) {
    const inputs: number[][] = [];
    const pre: number[][] = [];
    let h = x;
    member.layers.forEach((l, li) => {
      inputs.push(h);
      const z = Array.from({ length: l.out }, (_, j) => {
        let s = l.bias[j] as number;
        for (let i = 0; i < l.in; i++) s += (h[i] as number) * (l.weights[i * l.out + j] as number);
        return s;
      });
      pre.push(z);
      h = li < member.layers.length - 1 ? z.map((v) => Math.max(0, v)) : z;
    });
    value += h[0] as number;
    let up = [1];
    for (let li = member.layers.length - 1; li >= 0; li--) {
      const l = member.layers[li] as (typeof member.layers)[number];
      if (li < member.layers.length - 1) up = up.map((u, j) => ((pre[li]?.[j] as number) > 0 ? u : 0));
      const down = new Array<number>(l.in).fill(0);
      for (let i = 0; i < l.in; i++)
        for (let j = 0; j < l.out; j++)
          down[i] = (down[i] as number) + (up[j] as number) * (l.weights[i * l.out + j] as number);
      up = down;
    }
    for (let i = 0; i < d; i++) gradient[i] = (gradient[i] as number) + (up[i] as number);
  }
  const k = c.targetNormalisation.std / c.members.length;
  return {
    value: c.targetNormalisation.mean + k * value,
    gradient: gradient.map((g, i) => (g * k) / (c.inputNormalisation.std[i] as number)),
  };
}

describe('CompiledValueFunction', () => {
  const shapes: Array<{ d: number; hidden: number[]; members: number }> = [
    { d: 1, hidden: [3], members: 1 },
    { d: 5, hidden: [7, 3], members: 2 },
    { d: 16, hidden: [64, 32, 32, 16], members: 1 },
    { d: 16, hidden: [64, 32, 32, 16], members: 5 },
    { d: 129, hidden: [64, 32, 32, 16], members: 3 },
    { d: 131, hidden: [24, 8], members: 1 },
  ];

  const cases = shapes.flatMap((shape) => [
    { ...shape, simd: true },
    { ...shape, simd: false },
  ]);

  it('uses the WebAssembly SIMD kernels on Node, and the JS loops when asked', () => {
    const c = makeCheckpoint({ d: 8 });
    expect(new CompiledValueFunction(c).backend).toBe('wasm-simd');
    expect(new CompiledValueFunction(c, { simd: false }).backend).toBe('js');
  });

  it.each(cases)(
    'matches a plain float64 implementation, values and gradients (d = $d, members = $members, simd = $simd)',
    ({ d, hidden, members, simd }) => {
      // Weights rounded to float32, as a trained checkpoint stores them.
      const c = makeCheckpoint({ d, hidden, members, seed: d + members });
      for (const m of c.members) for (const l of m.layers) l.weights = l.weights.map(Math.fround);
      const f = new CompiledValueFunction(c, { simd });
      expect(f.backend).toBe(simd ? 'wasm-simd' : 'js');
      const rng = new Rng(d);
      const rows = 6;
      const phis = rng.normals(rows * d, 1.5);
      const { values, gradients } = f.predictWithGradients(phis, rows);
      const predicted = f.predict(phis, rows);
      for (let r = 0; r < rows; r++) {
        const ref = reference(c, phis.subarray(r * d, (r + 1) * d));
        const scale = Math.max(1, Math.abs(ref.value));
        expect(Math.abs((values[r] as number) - ref.value)).toBeLessThan(1e-6 * scale);
        expect(predicted[r]).toBe(values[r]);
        for (let i = 0; i < d; i++) {
          expect(Math.abs((gradients[r * d + i] as number) - (ref.gradient[i] as number))).toBeLessThan(
            1e-6 * Math.max(1, Math.abs(ref.gradient[i] as number)),
          );
        }
      }
    },
  );

  it.each([{ simd: true }, { simd: false }])(
    'gives the same answer for a row alone and inside a batch, and valueAndGradient agrees (simd = $simd)',
    ({ simd }) => {
      const c = makeCheckpoint({ d: 16, members: 2, seed: 3 });
      const f = new CompiledValueFunction(c, { simd });
      const phis = new Rng(4).normals(3 * 16);
      const batch = f.predictWithGradients(phis, 3);
      const g = new Float32Array(16);
      const v = f.valueAndGradient(phis.subarray(16, 32), g);
      expect(Math.fround(v)).toBe(batch.values[1]);
      expect(Array.from(g)).toEqual(Array.from(batch.gradients.subarray(16, 32)));
    },
  );

  it('SIMD kernels and JS loops agree to float32 rounding, on 200 random rows of every shape', () => {
    for (const { d, hidden, members } of shapes) {
      const c = makeCheckpoint({ d, hidden, members, seed: 31 * d + members });
      const fast = new CompiledValueFunction(c);
      const plain = new CompiledValueFunction(c, { simd: false });
      const rows = 200;
      const phis = new Rng(d + 7).normals(rows * d, 2);
      const a = fast.predictWithGradients(phis, rows);
      const b = plain.predictWithGradients(phis, rows);
      // float32 accumulation (SIMD) against float64 (JS): a few float32 ulps of the largest term.
      const close = (x: number, y: number) => Math.abs(x - y) <= 2e-5 * Math.max(1, Math.abs(y));
      for (let r = 0; r < rows; r++) expect(close(a.values[r] as number, b.values[r] as number)).toBe(true);
      let worst = 0;
      for (let i = 0; i < rows * d; i++) {
        const y = b.gradients[i] as number;
        worst = Math.max(worst, Math.abs((a.gradients[i] as number) - y) / Math.max(1, Math.abs(y)));
      }
      expect(worst).toBeLessThan(2e-5);
    }
  });
});

describe('the WebAssembly kernels (value-function-kernels.wat)', () => {
  /** sha256 of the float32 values and gradients of 17 rows, as the opcode-array kernels computed them. */
  const EARLIER: Record<string, string> = {
    '1/3/1': 'c3d12ef02b7b981dfca33a6ca842609f',
    '5/7-3/2': '0c197fd478ba5f61da6efc0cde5c9b45',
    '16/64-32-32-16/1': '7d88c504df6d8ab279933d085c8a3c12',
    '16/64-32-32-16/5': '879eb3ce79099d7fb56691fce50aa636',
    '128/64-32-32-16/1': 'b83e557e6ca9bcb8bfc7fb4047d04d8b',
    '129/64-32-32-16/3': '03dc179f0cb7864b8f8ae823c9bb5537',
    '131/24-8/1': 'edfadeda007b6b7d59862d22b6056353',
  };

  it('compute bit for bit what the kernels assembled from opcode arrays computed (main at 3b9a84d)', () => {
    for (const key of Object.keys(EARLIER)) {
      const [d, hidden, members] = key.split('/') as [string, string, string];
      const shape = { d: Number(d), hidden: hidden.split('-').map(Number), members: Number(members) };
      const c = makeCheckpoint({ ...shape, seed: shape.d * 7 + shape.members });
      const f = new CompiledValueFunction(c);
      expect(f.backend).toBe('wasm-simd');
      const rows = 17;
      const { values, gradients } = f.predictWithGradients(new Rng(shape.d + 100).normals(rows * shape.d, 1.5), rows);
      const h = createHash('sha256');
      h.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      h.update(new Uint8Array(gradients.buffer, gradients.byteOffset, gradients.byteLength));
      expect(h.digest('hex').slice(0, 32), key).toBe(EARLIER[key]);
    }
  });

  it('are compiled from the current .wat (the generated module is not stale)', async () => {
    // @ts-expect-error: a plain .mjs build script without types
    const { compileWat } = (await import('../../scripts/build-kernels.mjs')) as {
      compileWat: (path: string) => Promise<Uint8Array>;
    };
    const bytes = await compileWat(
      fileURLToPath(new URL('../../shared/method/value-function-kernels.wat', import.meta.url)),
    );
    expect(Buffer.from(bytes).toString('base64')).toBe(WASM_BASE64);
  });
});
