import { describe, expect, it } from 'vitest';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
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
    'matches a plain float64 implementation, values and gradients (d = $d, members = $members)',
    ({ d, hidden, members }) => {
      // Weights rounded to float32, as a trained checkpoint stores them.
      const c = makeCheckpoint({ d, hidden, members, seed: d + members });
      for (const m of c.members) for (const l of m.layers) l.weights = l.weights.map(Math.fround);
      const f = new CompiledValueFunction(c);
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

  it('gives the same answer for a row alone and inside a batch, and valueAndGradient agrees', () => {
    const c = makeCheckpoint({ d: 16, members: 2, seed: 3 });
    const f = new CompiledValueFunction(c);
    const phis = new Rng(4).normals(3 * 16);
    const batch = f.predictWithGradients(phis, 3);
    const g = new Float32Array(16);
    const v = f.valueAndGradient(phis.subarray(16, 32), g);
    expect(Math.fround(v)).toBe(batch.values[1]);
    expect(Array.from(g)).toEqual(Array.from(batch.gradients.subarray(16, 32)));
  });
});
