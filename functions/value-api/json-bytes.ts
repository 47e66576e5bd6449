import { slabBytes } from '../../shared/util/slab.js';
import { assertFinite, MAX_F32_BYTES, writeFloat32 } from './float32-text.js';

/**
 * JSON answers written straight into bytes, for the hot routes: no strings built per number, no
 * rope to flatten, no UTF-8 encoding pass and no Buffer.byteLength scan, which together cost
 * more than the gradient they carry.
 *
 * Float32 numbers (phi, gradients, normalised values: everything the float32 kernels compute)
 * are written with at most 9 significant digits, trailing zeros dropped. Nine digits always
 * identify a float32 (C's FLT_DECIMAL_DIG), so `Math.fround(JSON.parse(text))`, numpy's `float32(...)`
 * or torch's float32 tensors give back exactly the float32 that was computed, in half the bytes
 * of its shortest double form (`0.0012345678906142712` becomes `0.00123456789`). Layout as JS
 * writes numbers: plain decimals from 1e-6 to below 1e21, exponent form (`1.5e-7`, `2e+21`)
 * outside, so a float32 whose shortest double form has at most 9 digits reads as JS writes it.
 * Doubles (the `guide` route's scalars) are written as JS writes them. The digits come from
 * float32-text.ts (plain JS; test/value-api/json-bytes.test.ts checks that they read back).
 */

/**
 * A growable byte buffer for one JSON text. One instance is reused for every answer (the routes
 * are synchronous); `take()` copies the finished text out.
 */
export class JsonBytes {
  private buf = new Uint8Array(16 * 1024);
  private view = new DataView(this.buf.buffer);
  private p = 0;

  /** Starts a new text. */
  reset(): this {
    this.p = 0;
    return this;
  }

  /** Appends ASCII text (keys, punctuation, ids already JSON-encoded). */
  ascii(text: string): this {
    this.room(text.length);
    const buf = this.buf;
    let p = this.p;
    for (let i = 0; i < text.length; i++) buf[p++] = text.charCodeAt(i);
    this.p = p;
    return this;
  }

  /** Appends bytes. */
  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.p);
    this.p += b.length;
    return this;
  }

  /** Appends a finite double as JS writes it. */
  double(v: number): this {
    assertFinite(v);
    return this.ascii(`${v}`);
  }

  /** Appends `[a[from],...,a[to - 1]]`, each a float32 value. */
  float32s(a: Float32Array | Float64Array, from = 0, to = a.length): this {
    this.room(2 + (to - from) * (MAX_F32_BYTES + 1));
    const buf = this.buf;
    const view = this.view;
    let p = this.p;
    buf[p++] = 0x5b;
    for (let i = from; i < to; i++) {
      if (i > from) buf[p++] = 0x2c;
      p = writeFloat32(buf, view, p, a[i] as number);
    }
    buf[p++] = 0x5d;
    this.p = p;
    return this;
  }

  /** Appends `[a[from],...,a[to - 1]]`, each a double. */
  doubles(a: ArrayLike<number>, from = 0, to = a.length): this {
    this.ascii('[');
    for (let i = from; i < to; i++) {
      if (i > from) this.ascii(',');
      this.double(a[i] as number);
    }
    return this.ascii(']');
  }

  /** The text so far, copied into a fresh array of its exact length. */
  take(): Uint8Array {
    const out = slabBytes(this.p);
    out.set(this.buf.subarray(0, this.p));
    return out;
  }

  /** The text so far as a string (for tests and small answers). */
  text(): string {
    return new TextDecoder().decode(this.buf.subarray(0, this.p));
  }

  private room(n: number): void {
    if (this.p + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.p + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.p));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
}
