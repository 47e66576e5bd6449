import type { BatchResult, GradientResult, GuideResult } from './serve-guidance.js';

/**
 * The wire answers of predict, gradient and guide (the value API writes them; docs/value-api.md).
 * JSON answers: Float32 results (values, normalised values,
 * gradients, the guide direction) are written with at most 9 significant digits: nine digits
 * always identify a float32 (C's FLT_DECIMAL_DIG), so `Math.fround(JSON.parse(text))`, numpy's
 * `float32(...)` or torch's float32 tensors give back exactly the float32 that was computed, in
 * about half the bytes of its shortest double form (`0.0012345678906142712` is `0.00123456789`).
 * `toPrecision(9)` rounds correctly and `Number(...)` then `String(...)` drops trailing zeros and
 * keeps the layout JS uses for numbers (`1.5e-7`, `2e+21`). Doubles (guide's scalars) are
 * written as JS writes them. Every number is finite (checked by the use-case).
 */
export function float32Text(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`cannot write ${v} as a JSON number`);
  return String(Number(v.toPrecision(9)));
}

function float32s(a: Float32Array, from = 0, to = a.length): string {
  const texts = new Array<string>(to - from);
  for (let i = from; i < to; i++) texts[i - from] = float32Text(a[i] as number);
  return `[${texts.join(',')}]`;
}

function double(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`cannot write ${v} as a JSON number`);
  return String(v);
}

function head(served: BatchResult['served']): string {
  const { name, direction } = served.checkpoint.metric;
  return `{"id":${JSON.stringify(served.id)},"version":${served.version},"metric":${JSON.stringify({ name, direction })}`;
}

/** `{id, version, metric, values, normalised[, gradients]}` of a predict or gradient answer. */
export function phiAnswer(result: BatchResult | GradientResult): string {
  let text = `${head(result.served)},"values":${float32s(result.natural)},"normalised":${float32s(result.normalised)}`;
  if ('gradients' in result) {
    const d = result.served.compiled.d;
    const rows = new Array<string>(result.n);
    for (let r = 0; r < result.n; r++) rows[r] = float32s(result.gradients, r * d, (r + 1) * d);
    text += `,"gradients":[${rows.join(',')}]`;
  }
  return `${text}}`;
}

/** The binary answer: n float32 values, then (gradient) n x d gradient entries, little-endian. */
export function phiAnswerBytes(result: BatchResult | GradientResult): Uint8Array {
  const gradients = 'gradients' in result ? result.gradients : new Float32Array(0);
  const out = new Float32Array(result.n + gradients.length);
  out.set(result.natural);
  out.set(gradients, result.n);
  return float32Bytes(out);
}

/** The guide answer: the direction in float32 digits like the gradients, the values as doubles. */
export function guideAnswer(r: GuideResult): string {
  return `${head(r.served)},"direction":${float32s(r.direction)},"value":${double(r.natural)},"normalised":${double(r.normalised)},"P":${r.P},"sigma2":${r.sigma2},"seed":${r.seed}}`;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Float32 values as little-endian bytes. */
function float32Bytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] as number, true);
  return out;
}
