import { BINARY_CONTENT_TYPE, VERSION_HEADER } from '../../shared/schemas/api.js';
import type {
  BatchResult,
  GradientResult,
  GuideResult,
  PhiInput,
  ServedValueFunction,
} from '../../shared/use-cases/serving/serve-guidance.js';
import { slabFloat32 } from '../../shared/util/slab.js';
import { float32Bytes, parseFloat32, parseJson } from './body.js';
import { JsonBytes } from './json-bytes.js';
import { checkPhiBody, mediaType } from './validate.js';

/**
 * The hot routes, `predict` and `gradient`, minus the transport: the body's bytes in, the
 * answer's bytes out. The Hono routes (app.ts) and the Node fast lane (node-fast-lane.ts) both
 * call these, so the two cannot drift apart.
 */
export type PhiOp = 'predict' | 'gradient';

/**
 * A successful answer, ready to send with status 200: JSON text (UTF-8), or little-endian
 * float32 values when `binary`; `version` is the served checkpoint's (sent as a header on binary
 * answers).
 */
export interface PhiAnswer {
  binary: boolean;
  body: Uint8Array;
  version: number;
}

/** True when the content type asks for the binary form (else the body is JSON). */
export function isBinaryType(type: string | undefined): boolean {
  // The common exact spelling first (hot path), then any case and parameters.
  return type === BINARY_CONTENT_TYPE || (type !== undefined && mediaType(type) === BINARY_CONTENT_TYPE);
}

/**
 * phi from a request body: packed float32 rows, or JSON checked by `checkPhiBody` (a plain loop
 * for the common valid shape and for the first bad element, the zod schema for the rest).
 */
export function readPhiInput(op: PhiOp, binary: boolean, bytes: Uint8Array, maxRows: number): PhiInput {
  const earlier = handedOver.get(bytes);
  if (earlier !== undefined) {
    handedOver.delete(bytes);
    if (earlier instanceof Error) throw earlier;
    return earlier;
  }
  if (binary) return { kind: 'float32', data: parseFloat32(bytes, op) };
  return { kind: 'json', phi: checkPhiBody(op, parseJson(bytes, { op, maxContainers: maxRows + SPARE_CONTAINERS })) };
}

/**
 * What readPhiInput made of a body the Node fast lane read and then handed to the Hono app
 * (a failed check, or a use-case failure such as a row of the wrong length): the app's call of
 * readPhiInput on the same bytes takes it from here instead of parsing the body a second time.
 * Only handed-over bodies are entered (handOverReading), not every body the lane reads: a
 * WeakMap entry per request costs the garbage collector more than the lane's whole answer.
 */
const handedOver = new WeakMap<Uint8Array, PhiInput | Error>();

/** readPhiInput for the Node fast lane: the input, or the error readPhiInput would throw. */
export function tryReadPhiInput(op: PhiOp, binary: boolean, bytes: Uint8Array, maxRows: number): PhiInput | Error {
  try {
    return readPhiInput(op, binary, bytes, maxRows);
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

/**
 * Leaves the lane's reading of `bytes` for the app's readPhiInput on the same bytes (see
 * handedOver; the entry goes with the body when nobody asks for it).
 */
export function handOverReading(bytes: Uint8Array, reading: PhiInput | Error): void {
  handedOver.set(bytes, reading);
}

/**
 * Arrays and objects a JSON body may hold beyond one per row (the body, phi, and a few in keys
 * the schema ignores); `guide` needs 3 + 16 (MAX_GUIDE_GRADIENTS) at most and is allowed this many.
 */
export const SPARE_CONTAINERS = 64;

/** The answer to a computed predict/gradient, in the form the request used. */
export function writePhiAnswer(result: BatchResult | GradientResult, binary: boolean): PhiAnswer {
  const gradients = 'gradients' in result ? result.gradients : undefined;
  const version = result.served.version;
  if (!binary) return { binary, body: jsonAnswer(result, gradients), version };
  const n = result.n;
  const out = slabFloat32(n + (gradients?.length ?? 0));
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

/** `{"id":...,"version":...,"metric":{...}` per served checkpoint as UTF-8, built once. */
const prefixes = new WeakMap<ServedValueFunction, Uint8Array>();
export function prefixOf(served: ServedValueFunction): Uint8Array {
  let prefix = prefixes.get(served);
  if (prefix === undefined) {
    const metric = served.checkpoint.metric;
    const text = `{"id":${JSON.stringify(served.id)},"version":${served.version},"metric":${JSON.stringify({ name: metric.name, direction: metric.direction })}`;
    prefix = new TextEncoder().encode(text);
    prefixes.set(served, prefix);
  }
  return prefix;
}

/** The one JSON writer of the hot routes: answers are written synchronously, one at a time. */
const json = new JsonBytes();

/**
 * The JSON answer written straight into bytes (json-bytes.ts): the values, normalised values and
 * gradients are float32 results, written with the (at most) 9 digits that identify a float32.
 * Every number is finite (checked by the use-case).
 */
function jsonAnswer(result: BatchResult, gradients: Float32Array | undefined): Uint8Array {
  const n = result.n;
  json.reset().bytes(prefixOf(result.served)).ascii(',"values":').float32s(result.natural, 0, n);
  json.ascii(',"normalised":').float32s(result.normalised, 0, n);
  if (gradients !== undefined) {
    const d = result.served.compiled.d;
    json.ascii(',"gradients":[');
    for (let r = 0; r < n; r++) {
      if (r > 0) json.ascii(',');
      json.float32s(gradients, r * d, (r + 1) * d);
    }
    json.ascii(']');
  }
  return json.ascii('}').take();
}

/** The `guide` answer: the direction in float32 digits like the gradients, the values as doubles. */
export function guideAnswer(r: GuideResult): Uint8Array {
  json.reset().bytes(prefixOf(r.served)).ascii(',"direction":').float32s(r.direction);
  json.ascii(',"value":').double(r.natural).ascii(',"normalised":').double(r.normalised);
  return json.ascii(`,"P":${r.P},"sigma2":${r.sigma2},"seed":${r.seed}}`).take();
}
