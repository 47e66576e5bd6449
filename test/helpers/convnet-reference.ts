import type { FrozenConvNet } from '../../shared/models/convnet.js';

/**
 * The pooled ConvNet of the image runs, written out in float64 loops: conv 3x3 'same' with
 * the flattened [9 * in, out] kernel (patch index (dy * 3 + dx) * in + i), 2 x 2 average pooling
 * after zero-padding an odd side, FiLM, LeakyReLU and the linear classifier.
 */
export function conv(x: Float64Array, side: number, cin: number, w: Float32Array, cout: number): Float64Array {
  const out = new Float64Array(side * side * cout);
  for (let y = 0; y < side; y++)
    for (let xx = 0; xx < side; xx++)
      for (let o = 0; o < cout; o++) {
        let s = 0;
        for (let dy = 0; dy < 3; dy++)
          for (let dx = 0; dx < 3; dx++) {
            const yy = y + dy - 1;
            const xs = xx + dx - 1;
            if (yy < 0 || yy >= side || xs < 0 || xs >= side) continue;
            for (let i = 0; i < cin; i++)
              s += (x[(yy * side + xs) * cin + i] as number) * (w[((dy * 3 + dx) * cin + i) * cout + o] as number);
          }
        out[(y * side + xx) * cout + o] = s;
      }
  return out;
}
export function pool(x: Float64Array, side: number, c: number): Float64Array {
  const g = Math.ceil(side / 2);
  const out = new Float64Array(g * g * c);
  for (let y = 0; y < side; y++)
    for (let xx = 0; xx < side; xx++)
      for (let k = 0; k < c; k++) {
        const at = ((y >> 1) * g + (xx >> 1)) * c + k;
        out[at] = (out[at] as number) + 0.25 * (x[(y * side + xx) * c + k] as number);
      }
  return out;
}
export const leaky = (v: number, a: number) => (v >= 0 ? v : a * v);

/** The frozen part (pre-FiLM maps) of one image. */
export function referenceMaps(f: FrozenConvNet, image: Float32Array): Float64Array {
  const { side, channels, leakyAlpha } = f.config;
  const [c1, c2] = channels;
  const x = Float64Array.from(image, (v) => v * (f.config.inputScale ?? 1 / 16));
  const h1 = conv(x, side, 1, f.conv1.w, c1).map((v, i) => leaky(v + (f.conv1.b[i % c1] as number), leakyAlpha));
  const g1 = Math.ceil(side / 2);
  const z = pool(conv(pool(h1, side, c1), g1, c1, f.conv2.w, c2), g1, c2);
  return z.map((v, i) => v + (f.conv2.b[i % c2] as number));
}
export function referenceLogits(f: FrozenConvNet, maps: Float64Array, phi: ArrayLike<number>): Float64Array {
  const c2 = f.config.channels[1];
  const h = maps.map((v, i) =>
    leaky(v * (1 + (phi[i % c2] as number)) + (phi[c2 + (i % c2)] as number), f.config.leakyAlpha),
  );
  const out = new Float64Array(f.classes);
  for (let k = 0; k < f.classes; k++) {
    let s = f.dense.b[k] as number;
    for (let j = 0; j < h.length; j++) s += (h[j] as number) * (f.dense.w[j * f.classes + k] as number);
    out[k] = s;
  }
  return out;
}
export function crossEntropy(logits: Float64Array, y: number): number {
  const m = Math.max(...logits);
  const lse = m + Math.log(logits.reduce((s, v) => s + Math.exp(v - m), 0));
  return lse - (logits[y] as number);
}

/**
 * The embedding head in float64: the spatial mean of the FiLM'd, LeakyReLU'd maps (one entry
 * per channel), L2-normalised.
 */
export function referenceEmbedding(f: FrozenConvNet, maps: Float64Array, phi: ArrayLike<number>): Float64Array {
  const c2 = f.config.channels[1];
  const out = new Float64Array(c2);
  maps.forEach((v, i) => {
    const c = i % c2;
    out[c] = (out[c] as number) + leaky(v * (1 + (phi[c] as number)) + (phi[c2 + c] as number), f.config.leakyAlpha);
  });
  const norm = Math.hypot(...out);
  return out.map((v) => v / norm);
}
