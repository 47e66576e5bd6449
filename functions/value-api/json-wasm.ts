import {
  block,
  br,
  brIf,
  end,
  F32,
  F64,
  f32Abs,
  f32c,
  f32DemoteF64,
  f32Lt,
  f32Ne,
  f32Store,
  f64ConvertI64U,
  f64c,
  f64Div,
  f64Load,
  f64Mul,
  f64Neg,
  get,
  I32,
  I64,
  i32Add,
  i32And,
  i32c,
  i32Eq,
  i32Eqz,
  i32GeS,
  i32GtS,
  i32LeS,
  i32Load8U,
  i32LtS,
  i32LtU,
  i32Mul,
  i32Ne,
  i32Or,
  i32Shl,
  i32Sub,
  i64Add,
  i64And,
  i64c,
  i64Eq,
  i64Eqz,
  i64ExtendI32U,
  i64Load,
  i64Mul,
  i64Or,
  i64ShrU,
  ifThen,
  loop,
  name,
  orElse,
  ret,
  section,
  select,
  set,
  tee,
  uleb,
  vec,
  type WasmApi,
  wasmApi,
} from '../../shared/util/wasm-asm.js';
import { POW10 } from './float32-text.js';

/**
 * The row reader of phi-json.ts in WebAssembly: `row(p, d, out)` reads d JSON numbers separated
 * by single commas from the body bytes at p, writes them as float32 at out, and returns the
 * position after the last one, or -1 when it declines (whitespace, a malformed or unusual
 * number, one it is not sure of), in which case the JS reader takes the row. Same arithmetic
 * and the same exactness rules as the JS reader (see phi-json.ts): up to 15 significant digits
 * converted exactly, longer ones (JSON.stringify writes up to 17) approximated within a few
 * double roundings and taken only when no float32 rounding boundary lies within MARGIN. The
 * wasm version keeps the digits in a 64-bit integer and converts eight digits a step with three
 * multiplications, which JS numbers cannot do: about twice the JS reader's speed.
 *
 * (A float32 writer in the same style measured no faster than json-bytes.ts's JS one, ~23 ns
 * a number either way, so answers are written in JS.)
 */

/** Relative error margin of the approximate path (as phi-json.ts). */
const MARGIN = 2 ** -48;

// Memory layout (bytes): powers of ten, negative powers of ten, the output row, the body.
const POW_AT = 0;
const NEG_POW_AT = 256;
const OUT_AT = 1024;
const BODY_AT = 65536;
const PAGES = 4;
/** Bytes after the body that the reader may look at (zeros: they end any number). */
const TAIL = 16;

/** The largest row and body the wasm reader takes; bigger ones go to the JS reader. */
export const MAX_WASM_ROW = (BODY_AT - OUT_AT) / 4;
export const MAX_WASM_BODY = PAGES * 65536 - BODY_AT - TAIL;

function rowBody(): number[] {
  // params: 0 p, 1 d, 2 out; locals: 3 k, 4 c, 5 neg, 6 nd, 7 scale, 8 e, 9 eneg, 10 trunc (i32),
  // 11 m, 12 w (i64), 13 a (f64), 14 f (f32)
  const [P, D, OUT, K, C, NEG, ND, SCALE, E, ENEG, TRUNC, M, W, A, F] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
  ];
  const fail = [...i32c(-1), ...ret];
  /** c = body[p] */
  const readC = [...get(P), ...i32Load8U, ...set(C)];
  /** p += 1; c = body[p] */
  const advance = [...get(P), ...i32c(1), ...i32Add, ...tee(P), ...i32Load8U, ...set(C)];
  /** c is a digit */
  const isDigit = [...get(C), ...i32c(0x30), ...i32Sub, ...i32c(10), ...i32LtU];
  /** m = m * 10 + (c - '0') */
  const takeDigit = [
    ...get(M),
    ...i64c(10n),
    ...i64Mul,
    ...get(C),
    ...i32c(0x30),
    ...i32Sub,
    ...i64ExtendI32U,
    ...i64Add,
    ...set(M),
  ];
  const inc = (local: number, by: number) => [...get(local), ...i32c(by), ...i32Add, ...set(local)];
  // Eight digit bytes in w (the first in the low byte): each has high nibble 3, also after adding 6.
  const eightDigits = [
    ...get(W),
    ...i64c(0xf0f0f0f0f0f0f0f0n),
    ...i64And,
    ...get(W),
    ...i64c(0x0606060606060606n),
    ...i64Add,
    ...i64c(0xf0f0f0f0f0f0f0f0n),
    ...i64And,
    ...i64c(4n),
    ...i64ShrU,
    ...i64Or,
    ...i64c(0x3333333333333333n),
    ...i64Eq,
  ];
  // Their value: pairs, then fours, then all eight, three multiply-adds.
  const eightValue = [
    ...get(W),
    ...i64c(0x0f0f0f0f0f0f0f0fn),
    ...i64And,
    ...set(W),
    ...get(W),
    ...i64c(10n),
    ...i64Mul,
    ...get(W),
    ...i64c(8n),
    ...i64ShrU,
    ...i64Add,
    ...i64c(0x00ff00ff00ff00ffn),
    ...i64And,
    ...set(W),
    ...get(W),
    ...i64c(100n),
    ...i64Mul,
    ...get(W),
    ...i64c(16n),
    ...i64ShrU,
    ...i64Add,
    ...i64c(0x0000ffff0000ffffn),
    ...i64And,
    ...set(W),
    ...get(W),
    ...i64c(10000n),
    ...i64Mul,
    ...get(W),
    ...i64c(32n),
    ...i64ShrU,
    ...i64Add,
    ...i64c(0xffffffffn),
    ...i64And,
  ];
  /** the exact path: at most 15 digits, none dropped */
  const exact = [...get(ND), ...i32c(15), ...i32LeS, ...get(TRUNC), ...i32Eqz, ...i32And];
  const powAt = (base: number, negate: boolean) => [
    ...(negate ? [...i32c(0), ...get(SCALE), ...i32Sub] : get(SCALE)),
    ...i32c(3),
    ...i32Shl,
    ...i32c(base),
    ...i32Add,
    ...f64Load,
  ];
  /** out[k] = value on the stack (f32) */
  const storeOut = (value: number[]) => [
    ...get(OUT),
    ...get(K),
    ...i32c(2),
    ...i32Shl,
    ...i32Add,
    ...value,
    ...f32Store,
  ];
  // biome-ignore format: one wasm instruction group per line reads like the assembly it is
  const code = [
    ...i32c(0), ...set(K),
    ...block, ...get(D), ...i32Eqz, ...brIf(0),
    ...loop,
    // a comma before every number but the first
    ...get(K), ...ifThen,
    ...readC, ...get(C), ...i32c(0x2c), ...i32Ne, ...ifThen, ...fail, ...end,
    ...get(P), ...i32c(1), ...i32Add, ...set(P),
    ...end,
    // sign
    ...readC, ...get(C), ...i32c(0x2d), ...i32Eq, ...set(NEG),
    ...get(P), ...get(NEG), ...i32Add, ...set(P),
    ...i64c(0n), ...set(M), ...i32c(0), ...set(ND), ...i32c(0), ...set(SCALE), ...i32c(0), ...set(TRUNC),
    ...readC,
    // integer part: 0, or a non-zero digit and more digits (at most 17 in all)
    ...get(C), ...i32c(0x30), ...i32Eq, ...ifThen,
    ...advance, ...isDigit, ...ifThen, ...fail, ...end,
    ...orElse,
    ...isDigit, ...i32Eqz, ...ifThen, ...fail, ...end,
    ...loop,
    ...takeDigit, ...inc(ND, 1), ...advance,
    ...isDigit, ...ifThen, ...get(ND), ...i32c(17), ...i32GtS, ...ifThen, ...fail, ...end, ...br(1), ...end,
    ...end,
    ...end,
    // fraction
    ...get(C), ...i32c(0x2e), ...i32Eq, ...ifThen,
    ...advance, ...isDigit, ...i32Eqz, ...ifThen, ...fail, ...end,
    // leading zeros of a number below 1 only move the point
    ...get(ND), ...i32Eqz, ...ifThen,
    ...loop, ...get(C), ...i32c(0x30), ...i32Eq, ...ifThen, ...inc(SCALE, -1), ...advance, ...br(1), ...end, ...end,
    ...end,
    // eight digits a step while they fit in m (at most 18 digits)
    ...block, ...loop,
    ...get(ND), ...i32c(10), ...i32GtS, ...brIf(1),
    ...get(P), ...i64Load, ...set(W),
    ...eightDigits, ...i32Eqz, ...brIf(1),
    ...get(M), ...i64c(100000000n), ...i64Mul, ...eightValue, ...i64Add, ...set(M),
    ...inc(ND, 8), ...inc(SCALE, -8), ...inc(P, 8),
    ...br(0),
    ...end, ...end,
    // then one at a time; digits past the 18th are dropped (and the number is no longer exact)
    ...readC,
    ...block, ...loop,
    ...isDigit, ...i32Eqz, ...brIf(1),
    ...get(ND), ...i32c(18), ...i32LtS, ...ifThen,
    ...takeDigit, ...inc(ND, 1), ...inc(SCALE, -1),
    ...orElse,
    ...i32c(1), ...set(TRUNC),
    ...end,
    ...advance,
    ...br(0),
    ...end, ...end,
    ...end,
    // exponent
    ...get(C), ...i32c(0x20), ...i32Or, ...i32c(0x65), ...i32Eq, ...ifThen,
    ...advance,
    ...get(C), ...i32c(0x2d), ...i32Eq, ...set(ENEG),
    ...get(C), ...i32c(0x2d), ...i32Eq, ...get(C), ...i32c(0x2b), ...i32Eq, ...i32Or, ...ifThen, ...advance, ...end,
    ...isDigit, ...i32Eqz, ...ifThen, ...fail, ...end,
    ...i32c(0), ...set(E),
    ...loop,
    ...get(E), ...i32c(1000), ...i32LtS, ...ifThen,
    ...get(E), ...i32c(10), ...i32Mul, ...get(C), ...i32Add, ...i32c(0x30), ...i32Sub, ...set(E),
    ...end,
    ...advance,
    ...isDigit, ...brIf(0),
    ...end,
    ...get(SCALE), ...i32c(0), ...get(E), ...i32Sub, ...get(E), ...get(ENEG), ...select, ...i32Add, ...set(SCALE),
    ...end,
    // the value
    ...get(M), ...i64Eqz, ...ifThen,
    ...storeOut([...f32c(-0), ...f32c(0), ...get(NEG), ...select]),
    ...orElse,
    ...get(SCALE), ...i32c(22), ...i32GtS, ...get(SCALE), ...i32c(-44), ...i32LtS, ...i32Or, ...ifThen, ...fail, ...end,
    ...get(M), ...f64ConvertI64U, ...set(A),
    ...get(SCALE), ...i32c(0), ...i32GeS, ...ifThen,
    ...get(A), ...powAt(POW_AT, false), ...f64Mul, ...set(A),
    ...orElse,
    ...get(SCALE), ...i32c(-22), ...i32GeS, ...ifThen,
    ...exact, ...ifThen,
    ...get(A), ...powAt(POW_AT, true), ...f64Div, ...set(A),
    ...orElse,
    ...get(A), ...powAt(NEG_POW_AT, true), ...f64Mul, ...set(A),
    ...end,
    ...orElse,
    // 10^scale below 1e-22 in two products: approximate, so checked against the margin
    ...i32c(1), ...set(TRUNC),
    ...i32c(-22), ...get(SCALE), ...i32Sub, ...i32c(3), ...i32Shl, ...i32c(NEG_POW_AT), ...i32Add, ...f64Load,
    ...get(A), ...f64c(1e-22), ...f64Mul, ...f64Mul, ...set(A),
    ...end,
    ...end,
    ...get(NEG), ...ifThen, ...get(A), ...f64Neg, ...set(A), ...end,
    ...get(A), ...f32DemoteF64, ...set(F),
    // finite
    ...get(F), ...f32Abs, ...f32c(Number.POSITIVE_INFINITY), ...f32Lt, ...i32Eqz, ...ifThen, ...fail, ...end,
    // sure of the float32 unless exact: both ends of the error interval round to it
    ...exact, ...i32Eqz, ...ifThen,
    ...get(A), ...f64c(1 + MARGIN), ...f64Mul, ...f32DemoteF64, ...get(F), ...f32Ne, ...ifThen, ...fail, ...end,
    ...get(A), ...f64c(1 - MARGIN), ...f64Mul, ...f32DemoteF64, ...get(F), ...f32Ne, ...ifThen, ...fail, ...end,
    ...end,
    ...storeOut(get(F)),
    ...end,
    ...inc(K, 1),
    ...get(K), ...get(D), ...i32LtS, ...brIf(0),
    ...end,
    ...end,
    ...get(P),
  ];
  return [
    ...vec([
      [8, I32],
      [2, I64],
      [1, F64],
      [1, F32],
    ]),
    ...code,
    ...end,
  ];
}

interface JsonExports {
  row(p: number, d: number, out: number): number;
  mem: { buffer: ArrayBuffer };
}

let instance: WasmJson | null | undefined;

/** The module, or null where WebAssembly is unavailable (the JS reader and writer do it all). */
export function wasmJson(): WasmJson | null {
  if (instance === undefined) {
    const wasm = wasmApi();
    try {
      instance = wasm ? new WasmJson(wasm) : null;
    } catch {
      instance = null;
    }
  }
  return instance;
}

/** One instance of the module with its memory: a body is loaded once and read row by row. */
export class WasmJson {
  private readonly k: JsonExports;
  private readonly bytes: Uint8Array;
  private readonly floats: Float32Array;

  constructor(wasm: WasmApi) {
    // biome-ignore format: module layout, section by section
    const module = new wasm.Module(new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), ...vec([[I32]])]])),
      ...section(3, vec([[0]])),
      ...section(5, vec([[0x00, ...uleb(PAGES)]])),
      ...section(7, vec([[...name('row'), 0x00, 0], [...name('mem'), 0x02, 0]])),
      ...section(10, vec([rowBody()].map((b) => [...uleb(b.length), ...b]))),
    ]));
    this.k = new wasm.Instance(module, {}).exports as JsonExports;
    const buffer = this.k.mem.buffer;
    this.bytes = new Uint8Array(buffer);
    this.floats = new Float32Array(buffer);
    const f64 = new Float64Array(buffer);
    for (let k = 0; k <= 22; k++) {
      f64[POW_AT / 8 + k] = POW10[k] as number;
      f64[NEG_POW_AT / 8 + k] = 1 / (POW10[k] as number);
    }
  }

  /** Copies a body into the module's memory (at most MAX_WASM_BODY bytes). */
  load(body: Uint8Array): void {
    this.bytes.set(body, BODY_AT);
    this.bytes.fill(0, BODY_AT + body.length, BODY_AT + body.length + TAIL);
  }

  /**
   * Reads d numbers (d <= MAX_WASM_ROW) of the loaded body from byte `at` into out[outAt..];
   * returns the position after them, or -1 when it declines (nothing is written to out then).
   */
  row(at: number, d: number, out: Float32Array, outAt: number): number {
    const end = this.k.row(BODY_AT + at, d, OUT_AT);
    if (end < 0) return -1;
    out.set(this.floats.subarray(OUT_AT / 4, OUT_AT / 4 + d), outAt);
    return end - BODY_AT;
  }
}
