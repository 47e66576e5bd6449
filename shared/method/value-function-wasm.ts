import { WASM_BASE64 } from './value-function-kernels.wasm.js';

// The WebAssembly module of value-function-kernels.wat (WebAssembly text, compiled by wabt at
// build time into value-function-kernels.wasm.ts): compiled once per thread, instantiated on a
// memory of its user's (serving: value-function-simd-path.ts; training:
// value-function-net-f32.ts).

/** The parts of the WebAssembly API used here (the project's TypeScript lib has no DOM types). */
export interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
export type WasmModule = { readonly __wasmModule?: never };
export interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}

export const WASM_PAGE = 65536;

/** The runtime's WebAssembly API, or undefined where there is none. */
export function wasmApi(): WasmApi | undefined {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
}

let simdModule: WasmModule | null | undefined;

/** The compiled kernel module, or null where WebAssembly or its SIMD instructions are unavailable. */
export function simdKernels(): WasmModule | null {
  if (simdModule !== undefined) return simdModule;
  try {
    const wasm = wasmApi();
    simdModule = wasm ? new wasm.Module(Uint8Array.from(atob(WASM_BASE64), (c) => c.charCodeAt(0))) : null;
  } catch {
    simdModule = null;
  }
  return simdModule;
}

/** The kernels' exports (type E) on a fresh memory of at least `bytes` bytes. */
export function instantiateKernels<E>(module: WasmModule, bytes: number): { exports: E; memory: WasmMemory } {
  const wasm = wasmApi();
  if (wasm === undefined) throw new Error('WebAssembly is not available');
  const memory = new wasm.Memory({ initial: Math.ceil(bytes / WASM_PAGE) + 1 });
  return { exports: new wasm.Instance(module, { env: { memory } }).exports as E, memory };
}

/** Rows and vectors are padded with zeros to a multiple of 8 floats (the kernels read 8 a step). */
export const pad8 = (n: number): number => (n + 7) & ~7;

/** A bump allocator of byte offsets in a kernel memory, each region 8-float (32-byte) aligned. */
export class KernelLayout {
  constructor(public bytes = 0) {}

  alloc(floats: number): number {
    const offset = this.bytes;
    this.bytes += pad8(floats) * 4;
    return offset;
  }
}
