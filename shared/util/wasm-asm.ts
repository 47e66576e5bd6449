/**
 * A small WebAssembly assembler: the binary encodings and the instructions the hand-written
 * kernels use (shared/method/value-function-f32.ts, functions/value-api/json-wasm.ts). A
 * kernel is an array of bytes built from these, one instruction group per line; there is no
 * toolchain and no binary file to ship.
 */

export const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};
export const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};
/** Signed LEB128 of a 64-bit value (given as its unsigned bits or a signed BigInt). */
export const sleb64 = (value: bigint): number[] => {
  let n = BigInt.asIntN(64, value);
  const out: number[] = [];
  for (;;) {
    const byte = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (byte & 0x40) === 0) || (n === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};
export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
export const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
export const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

// Value types.
export const I32 = 0x7f;
export const I64 = 0x7e;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

// Locals and control.
export const get = (i: number) => [0x20, i];
export const set = (i: number) => [0x21, i];
export const tee = (i: number) => [0x22, i];
export const block = [0x02, 0x40];
export const loop = [0x03, 0x40];
export const ifThen = [0x04, 0x40];
export const orElse = [0x05];
export const end = [0x0b];
export const br = (depth: number) => [0x0c, depth];
export const brIf = (depth: number) => [0x0d, depth];
export const ret = [0x0f];
export const select = [0x1b];

// i32.
export const i32c = (v: number) => [0x41, ...sleb(v)];
export const i32Eqz = [0x45];
export const i32Eq = [0x46];
export const i32Ne = [0x47];
export const i32LtS = [0x48];
export const i32LtU = [0x49];
export const i32GtS = [0x4a];
export const i32GtU = [0x4b];
export const i32LeS = [0x4c];
export const i32GeS = [0x4e];
export const i32GeU = [0x4f];
export const i32Add = [0x6a];
export const i32Sub = [0x6b];
export const i32Mul = [0x6c];
export const i32And = [0x71];
export const i32Or = [0x72];
export const i32Shl = [0x74];
export const i32Load8U = [0x2d, 0, 0];
export const i32Store8At = (offset: number) => [0x3a, 0, ...uleb(offset)];
export const i32LoadAt = (offset: number) => [0x28, 2, ...uleb(offset)];
export const i32StoreAt = (offset: number) => [0x36, 2, ...uleb(offset)];

// i64.
export const i64c = (v: bigint) => [0x42, ...sleb64(v)];
export const i64Eqz = [0x50];
export const i64Eq = [0x51];
export const i64Add = [0x7c];
export const i64Mul = [0x7e];
export const i64And = [0x83];
export const i64Or = [0x84];
export const i64Shl = [0x86];
export const i64ShrU = [0x88];
export const i64Sub = [0x7d];
export const i64Clz = [0x79];
export const i32WrapI64 = [0xa7];
export const i64ExtendI32U = [0xad];
export const i64Load = [0x29, 3, 0];
/** i64.store with the alignment hint 2^0 (the stores of text are unaligned). */
export const i64StoreAt = (offset: number) => [0x37, 0, ...uleb(offset)];

// f32 and f64.
export const f32zero = [0x43, 0, 0, 0, 0];
export const f32c = (v: number) => [0x43, ...new Uint8Array(Float32Array.of(v).buffer)];
export const f64c = (v: number) => [0x44, ...new Uint8Array(Float64Array.of(v).buffer)];
export const f32Load = [0x2a, 2, 0];
export const f32LoadAt = (offset: number) => [0x2a, 2, ...uleb(offset)];
export const f32Store = [0x38, 2, 0];
export const f32StoreAt = (offset: number) => [0x38, 2, ...uleb(offset)];
export const f32Ne = [0x5c];
export const f32Lt = [0x5d];
export const f32Gt = [0x5e];
export const f32Abs = [0x8b];
export const f32Add = [0x92];
export const f32Max = [0x97];
export const f64Load = [0x2b, 3, 0];
export const f64LoadAt = (offset: number) => [0x2b, 3, ...uleb(offset)];
export const f64PromoteF32 = [0xbb];
export const f64Abs = [0x99];
export const f64Lt = [0x63];
export const f64Ge = [0x66];
export const f64Add = [0xa0];
export const f64Floor = [0x9c];
export const i32TruncF64U = [0xab];
export const f64Neg = [0x9a];
export const f64Mul = [0xa2];
export const f64Div = [0xa3];
export const f64ConvertI64U = [0xba];
export const f32DemoteF64 = [0xb6];

// SIMD (f32x4).
export const v128Load = [0xfd, 0x00, 4, 0];
export const v128Store = [0xfd, 0x0b, 4, 0];
export const f32x4Splat = [0xfd, 0x13];
export const f32x4Lane = (lane: number) => [0xfd, 0x1f, lane];
export const f32x4Add = [0xfd, 0xe4, 0x01];
export const f32x4Mul = [0xfd, 0xe6, 0x01];

// SIMD (f64x2, and the conversions between two float32s and two doubles).
export const v128Load64Zero = [0xfd, 0x5d, 3, 0];
export const v128Store64Lane0 = [0xfd, 0x5b, 3, 0, 0];
export const f64x2PromoteLowF32x4 = [0xfd, 0x5f];
export const f32x4DemoteF64x2Zero = [0xfd, 0x5e];
export const f64x2Sub = [0xfd, 0xf1, 0x01];
export const f64x2Mul = [0xfd, 0xf2, 0x01];

/** The slice of the WebAssembly JS API used here (not in the ES lib this project compiles against). */
export interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
}
export type WasmModule = { readonly __wasmModule?: never };

/** The runtime's WebAssembly API, or undefined where there is none. */
export function wasmApi(): WasmApi | undefined {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
}
