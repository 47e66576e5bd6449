import { BINARY_CONTENT_TYPE, predictRequestSchema, VERSION_HEADER } from '../../shared/schemas/api.js';
import type {
  BatchResult,
  GradientResult,
  PhiInput,
  ServedValueFunction,
} from '../../shared/use-cases/serve-guidance.js';
import { float32Bytes, newFloat32, parseFloat32, parseJson } from './body.js';
import { plainPhi, validate } from './validate.js';

/**
 * The hot routes, `predict` and `gradient`, minus the transport: the body's bytes in, the
 * answer's bytes out. The Hono routes (app.ts) and the Node fast lane (node-fast-lane.ts) both
 * call these, so the two cannot drift apart.
 */
export type PhiOp = 'predict' | 'gradient';

/**
 * A successful answer, ready to send with status 200: JSON text, or little-endian float32 values
 * when `binary`; `version` is the served checkpoint's (sent as a header on binary answers).
 */
export type PhiAnswer =
  | { binary: false; body: string; version: number }
  | { binary: true; body: Uint8Array; version: number };

/** True when the content type asks for the binary form (else the body is JSON). */
export function isBinaryType(type: string | undefined): boolean {
  return type?.startsWith(BINARY_CONTENT_TYPE) === true;
}

/**
 * phi from a request body: packed float32 rows, or JSON checked by the hand-written fast check
 * and, when that declines, by the zod schema (which words the 400).
 */
export function readPhiInput(op: PhiOp, binary: boolean, bytes: Uint8Array): PhiInput {
  if (binary) return { kind: 'float32', data: parseFloat32(bytes, op) };
  const body = parseJson(bytes);
  return { kind: 'json', phi: plainPhi(body) ?? validate(op, predictRequestSchema, body).phi };
}

/** The answer to a computed predict/gradient, in the form the request used. */
export function writePhiAnswer(result: BatchResult | GradientResult, binary: boolean): PhiAnswer {
  const gradients = 'gradients' in result ? result.gradients : undefined;
  const version = result.served.version;
  if (!binary) return { binary, body: jsonAnswer(result, gradients), version };
  const n = result.n;
  const out = newFloat32(n + (gradients?.length ?? 0));
  out.set(result.natural);
  if (gradients !== undefined) out.set(gradients, n);
  return { binary, body: float32Bytes(out), version };
}

/** Response headers of an answer (fresh object: @hono/node-server adds Content-Length to it). */
export function phiAnswerHeaders(answer: PhiAnswer): Record<string, string> {
  return answer.binary
    ? { 'content-type': BINARY_CONTENT_TYPE, [VERSION_HEADER]: String(answer.version) }
    : { 'content-type': 'application/json' };
}

/** `"id":...,"version":...,"metric":{...}` per served checkpoint, built once. */
const prefixes = new WeakMap<ServedValueFunction, string>();
export function prefixOf(served: ServedValueFunction): string {
  let prefix = prefixes.get(served);
  if (prefix === undefined) {
    const metric = served.checkpoint.metric;
    prefix = `"id":${JSON.stringify(served.id)},"version":${served.version},"metric":${JSON.stringify({ name: metric.name, direction: metric.direction })}`;
    prefixes.set(served, prefix);
  }
  return prefix;
}

/**
 * JSON by hand: every number is finite (checked by the use-case), so ToString of each is valid
 * JSON, the same text JSON.stringify writes for it. One flat string, no nested arrays or
 * objects built per request.
 */
function jsonAnswer(result: BatchResult, gradients: Float32Array | undefined): string {
  let text = `{${prefixOf(result.served)},"values":`;
  text = numbers(text, result.natural, 0, result.n);
  text += ',"normalised":';
  text = numbers(text, result.normalised, 0, result.n);
  if (gradients !== undefined) {
    const d = result.served.compiled.d;
    text += ',"gradients":[';
    for (let r = 0; r < result.n; r++) {
      if (r > 0) text += ',';
      text = numbers(text, gradients, r * d, (r + 1) * d);
    }
    text += ']';
  }
  return `${text}}`;
}

/** Appends `[a[from],...,a[to - 1]]` to `text`. */
function numbers(text: string, a: Float32Array | Float64Array, from: number, to: number): string {
  let out = `${text}[`;
  for (let i = from; i < to; i++) out += i === from ? `${a[i]}` : `,${a[i]}`;
  return `${out}]`;
}
