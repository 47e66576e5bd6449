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
  f32LoadAt,
  f32Lt,
  f32Ne,
  f32Store,
  f64Abs,
  f64Add,
  f64ConvertI64U,
  f64Floor,
  f64Ge,
  f64LoadAt,
  f64Lt,
  f64PromoteF32,
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
  i32GeU,
  i32GtS,
  i32LeS,
  i32Load8U,
  i32LtS,
  i32LtU,
  i32Mul,
  i32Ne,
  i32Or,
  i32Shl,
  i32Store8At,
  i32StoreAt,
  i32Sub,
  i32TruncF64U,
  i32WrapI64,
  i64Add,
  i64And,
  i64c,
  i64Clz,
  i64Eq,
  i64Eqz,
  i64ExtendI32U,
  i64Load,
  i64Mul,
  i64Or,
  i64Shl,
  i64ShrU,
  i64StoreAt,
  i64Sub,
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
import { POW10, writeFloat32 } from './float32-text.js';

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
 * The same module writes float32 answers (`f32s`, for json-bytes.ts): see f32sBody.
 */

/** Relative error margin of the approximate path (as phi-json.ts). */
const MARGIN = 2 ** -48;

// Memory layout (bytes): powers of ten, negative powers of ten, the output row, the body.
const POW_AT = 0;
const NEG_POW_AT = 256;
/** Where f32s leaves the end of its text (i32). */
const END_AT = 512;
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

/**
 * `f32s(src, n, dst)`: the common case of float32-text.ts's writer, n float32 values at src
 * written from dst on as `v,` each (`0.000ddddddddd,` for 1e-6 <= |v| < 1), with the same
 * digits, the same trailing zeros dropped and so the same bytes as writeFloat32. It stops at the
 * first value outside that range (or whose nine digits carry into a tenth): returns how many it
 * wrote and leaves the end of the text at END_AT. No branch per value but the loop's: the decade
 * by summed comparisons, the sign and the trailing zeros by arithmetic, and the eight digits after
 * the first split in a 64-bit integer by multiply-shifts instead of divisions and a digit table.
 * About 12 ns a value here, against about 20 for the JS writer (bench/RESULTS.md, "JSON text").
 */
function f32sBody(): number[] {
  // params: 0 src, 1 n, 2 dst; locals: 3 i, 4 e, 5 m, 6 q, 7 rest (i32), 8 x, 9 h (i64), 10 v, 11 a (f64)
  const [SRC, N, DST, I, E, M, Q, REST, X, H, V, A] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const atLeast = (c: number) => [...get(A), ...f64c(c), ...f64Ge];
  /**
   * Splits every lane of x in two: h = the lane divided by `times` (a multiply-shift, exact for
   * the lane's range), kept in place; the remainder moved up by `spread` bits into a lane of its own.
   */
  // biome-ignore format: one instruction group per line
  const lanes = (mul: bigint, shift: bigint, mask: bigint, times: bigint, spread: bigint) => [
    ...get(X), ...i64c(mul), ...i64Mul, ...i64c(shift), ...i64ShrU, ...i64c(mask), ...i64And, ...set(H),
    ...get(H), ...get(X), ...get(H), ...i64c(times), ...i64Mul, ...i64Sub, ...i64c(spread), ...i64Shl, ...i64Or, ...set(X),
  ];
  // biome-ignore format: one instruction group per line
  const code = [
    ...block,
    ...get(N), ...i32Eqz, ...brIf(0),
    ...loop,
    // a = |v|, v the float32 at src[i]; stop unless 1e-6 <= a < 1
    ...get(SRC), ...get(I), ...i32c(2), ...i32Shl, ...i32Add, ...f32LoadAt(0), ...f64PromoteF32, ...tee(V),
    ...f64Abs, ...set(A),
    ...atLeast(1e-6), ...get(A), ...f64c(1), ...f64Lt, ...i32And, ...i32Eqz, ...brIf(1),
    // the decimal exponent e (-6..-1): one comparison per decade, summed
    ...i32c(-6), ...atLeast(1e-5), ...i32Add, ...atLeast(1e-4), ...i32Add, ...atLeast(1e-3), ...i32Add,
    ...atLeast(1e-2), ...i32Add, ...atLeast(1e-1), ...i32Add, ...set(E),
    // m = round(a * 10^(8 - e)), nine digits (Math.round's floor(x + 0.5) is exact at this size)
    ...i32c(8), ...get(E), ...i32Sub, ...i32c(3), ...i32Shl, ...f64LoadAt(POW_AT),
    ...get(A), ...f64Mul, ...f64c(0.5), ...f64Add, ...f64Floor, ...i32TruncF64U, ...tee(M),
    ...i32c(100_000_000), ...i32Sub, ...i32c(900_000_000), ...i32GeU, ...brIf(1),
    // "-" kept only when negative, then "0.000000", of which 1 - e bytes are kept
    ...get(DST), ...i32c(0x2d), ...i32Store8At(0),
    ...get(DST), ...get(V), ...f64c(0), ...f64Lt, ...i32Add, ...tee(DST),
    ...i64c(0x3030303030302e30n), ...i64StoreAt(0),
    ...get(DST), ...i32c(1), ...i32Add, ...get(E), ...i32Sub, ...set(DST),
    // the first digit (m / 10^8 as a multiply-shift), then the other eight
    ...get(M), ...i64ExtendI32U, ...i64c(1441151881n), ...i64Mul, ...i64c(57n), ...i64ShrU, ...i32WrapI64, ...set(Q),
    ...get(DST), ...get(Q), ...i32c(0x30), ...i32Add, ...i32Store8At(0),
    ...get(M), ...get(Q), ...i32c(100_000_000), ...i32Mul, ...i32Sub, ...set(REST),
    // x = the two groups of four digits in 32-bit lanes, first group low
    ...get(REST), ...i64ExtendI32U, ...i64c(109951163n), ...i64Mul, ...i64c(40n), ...i64ShrU, ...i32WrapI64, ...tee(Q),
    ...i64ExtendI32U,
    ...get(REST), ...get(Q), ...i32c(10000), ...i32Mul, ...i32Sub, ...i64ExtendI32U, ...i64c(32n), ...i64Shl, ...i64Or,
    ...set(X),
    // then pairs in 16-bit lanes (/ 100), then digits in bytes (/ 10)
    ...lanes(10486n, 20n, 0x0000007f0000007fn, 100n, 16n),
    ...lanes(103n, 10n, 0x000f000f000f000fn, 10n, 8n),
    ...get(DST), ...get(X), ...i64c(0x3030303030303030n), ...i64Add, ...i64StoreAt(1),
    // nine digits less the trailing zeros (zero bytes at the top of x), then a comma
    ...get(DST), ...i32c(9), ...i32Add, ...get(X), ...i64Clz, ...i64c(3n), ...i64ShrU, ...i32WrapI64, ...i32Sub, ...tee(DST),
    ...i32c(0x2c), ...i32Store8At(0),
    ...get(DST), ...i32c(1), ...i32Add, ...set(DST),
    ...get(I), ...i32c(1), ...i32Add, ...tee(I), ...get(N), ...i32LtU, ...brIf(0),
    ...end,
    ...end,
    ...i32c(0), ...get(DST), ...i32StoreAt(END_AT),
    ...get(I),
  ];
  return [
    ...vec([
      [5, I32],
      [2, I64],
      [2, F64],
    ]),
    ...code,
    ...end,
  ];
}

interface JsonExports {
  row(p: number, d: number, out: number): number;
  f32s(src: number, n: number, dst: number): number;
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
  private readonly ints: Int32Array;

  constructor(wasm: WasmApi) {
    // biome-ignore format: module layout, section by section
    const module = new wasm.Module(new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), ...vec([[I32]])]])),
      ...section(3, vec([[0], [0]])),
      ...section(5, vec([[0x00, ...uleb(PAGES)]])),
      ...section(7, vec([[...name('row'), 0x00, 0], [...name('f32s'), 0x00, 1], [...name('mem'), 0x02, 0]])),
      ...section(10, vec([rowBody(), f32sBody()].map((b) => [...uleb(b.length), ...b]))),
    ]));
    this.k = new wasm.Instance(module, {}).exports as JsonExports;
    const buffer = this.k.mem.buffer;
    this.bytes = new Uint8Array(buffer);
    this.floats = new Float32Array(buffer);
    this.ints = new Int32Array(buffer);
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

  /**
   * Writes a[from..to) into buf from p as `v,v,...,v,` (each value followed by a comma): the
   * common values in the module (f32s), the others with writeFloat32. Returns the end. buf needs
   * the room of float32s (MAX_F32_BYTES + 1 a value).
   */
  float32s(buf: Uint8Array, view: DataView, p: number, a: Float32Array, from: number, to: number): number {
    const k = this.k;
    const bytes = this.bytes;
    while (from < to) {
      const n = Math.min(to - from, F32S_CHUNK);
      this.floats.set(a.subarray(from, from + n), OUT_AT / 4);
      let i = 0;
      for (;;) {
        i += k.f32s(OUT_AT + 4 * i, n - i, BODY_AT);
        const end = this.ints[END_AT / 4] as number;
        buf.set(bytes.subarray(BODY_AT, end), p);
        p += end - BODY_AT;
        if (i === n) break;
        p = writeFloat32(buf, view, p, a[from + i] as number);
        buf[p++] = 0x2c;
        if (++i === n) break;
      }
      from += n;
    }
    return p;
  }
}

/** Values per f32s call: their text (at most 18 bytes each, and an 8-byte store past it) fits the body area. */
const F32S_CHUNK = 8192;
