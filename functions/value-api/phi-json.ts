import { slabFloat32 } from '../../shared/util/slab.js';
import { POW10 } from './float32-text.js';
import { MAX_WASM_BODY, MAX_WASM_ROW, type WasmJson, wasmJson } from './json-wasm.js';

/**
 * A fast reader for the one JSON body shape the hot routes see nearly always:
 * `{"phi":[x,...]}` or `{"phi":[[x,...],...]}` with every row `d` long. It reads the bytes
 * straight into float32 rows, skipping the JS arrays and heap numbers of JSON.parse, which is
 * the largest single cost of a JSON gradient request.
 *
 * Exactness: the served value is `Math.fround(JSON.parse(text))`, i.e. the decimal rounded to
 * the nearest double and that double to the nearest float32. Numbers of at most 15 significant
 * digits with a power of ten up to 22 are converted exactly that way (the integer of the digits
 * and the power are exact doubles, so one division or product rounds correctly: Clinger's fast
 * path). Longer numbers (JSON.stringify and Python write up to 17 digits) are approximated
 * within a few double ulps, and taken only when the float32 they round to cannot depend on that
 * error: when no float32 rounding boundary lies within a safe margin of the approximation. The
 * rare number that is too close, too long, or out of the plain float32 range makes the reader
 * give up.
 *
 * It gives up (returns undefined) on anything else too: other keys, other layouts, a row of the
 * wrong length, an empty phi, more than `maxRows` rows, non-ASCII bytes, invalid JSON. The caller
 * then takes the general path (JSON.parse, the zod schema, the use-case's checks), which also
 * words every error; so this reader changes only how fast a valid body is read, never an answer.
 * test/value-api/fast-paths.test.ts checks it against `Math.fround(JSON.parse(...))`.
 */
export interface PhiRows {
  /** Row-major n x d float32 values. */
  data: Float32Array;
  n: number;
  /** One phi (`[x,...]`) rather than a batch (`[[x,...],...]`). */
  single: boolean;
}

/** Relative error bound of the approximation of long numbers, with room to spare (see readNumber). */
const MARGIN = 2 ** -48;
/** 10^-k for k = 0..22, each the double nearest to it. */
const NEG_POW10 = POW10.slice(0, 23).map((p) => 1 / p);

/** Reads `{"phi":...}` as float32 rows of length d; undefined when it is not that plain shape. */
export function readPhiJson(
  bytes: Uint8Array,
  d: number,
  maxRows: number,
  options: { wasm?: boolean } = {},
): PhiRows | undefined {
  const r = new Reader(bytes, options.wasm === false ? 0 : d);
  r.ws();
  if (!r.eat(0x7b /* { */)) return undefined;
  r.ws();
  // "phi"
  if (!r.eat(0x22) || !r.eat(0x70) || !r.eat(0x68) || !r.eat(0x69) || !r.eat(0x22)) return undefined;
  r.ws();
  if (!r.eat(0x3a /* : */)) return undefined;
  r.ws();
  if (!r.eat(0x5b /* [ */)) return undefined;
  r.ws();
  const single = r.peek() !== 0x5b;
  let data: Float32Array;
  let n = 0;
  if (single) {
    data = slabFloat32(d);
    if (!r.row(data, 0, d)) return undefined;
    n = 1;
  } else {
    let rows = new Float32Array(d * 4);
    for (;;) {
      if (n === maxRows) return undefined;
      if ((n + 1) * d > rows.length) {
        const grown = new Float32Array(rows.length * 2);
        grown.set(rows);
        rows = grown;
      }
      if (!r.eat(0x5b)) return undefined;
      r.ws();
      if (!r.row(rows, n * d, d)) return undefined;
      n++;
      r.ws();
      if (r.eat(0x2c /* , */)) {
        r.ws();
        continue;
      }
      if (!r.eat(0x5d /* ] */)) return undefined;
      break;
    }
    data = rows.length === n * d ? rows : rows.slice(0, n * d);
  }
  r.ws();
  if (!r.eat(0x7d /* } */)) return undefined;
  r.ws();
  return r.done() ? { data, n, single } : undefined;
}

class Reader {
  i = 0;
  /** A view of the body for the JS reader's word reads, made when it first needs one. */
  private words: DataView | undefined;
  /** The WebAssembly row reader with this body loaded, when it can take it. */
  private readonly fast: WasmJson | null;

  /** `wasmRow`: the row length for the WebAssembly reader, 0 for none. */
  constructor(
    readonly b: Uint8Array,
    wasmRow: number,
  ) {
    this.fast = wasmRow > 0 && wasmRow <= MAX_WASM_ROW && b.length <= MAX_WASM_BODY ? wasmJson() : null;
    this.fast?.load(b);
  }

  peek(): number {
    return this.i < this.b.length ? (this.b[this.i] as number) : -1;
  }

  eat(c: number): boolean {
    if (this.b[this.i] !== c) return false;
    this.i++;
    return true;
  }

  ws(): void {
    const b = this.b;
    for (;;) {
      const c = b[this.i];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.i++;
    }
  }

  done(): boolean {
    return this.i === this.b.length;
  }

  /** `x, ..., x]` with exactly d numbers (the opening bracket already read) into out[at..]. */
  row(out: Float32Array, at: number, d: number): boolean {
    if (this.fast !== null) {
      const end = this.fast.row(this.i, d, out, at);
      if (end >= 0) {
        this.i = end;
        this.ws();
        return this.eat(0x5d);
      }
    }
    const b = this.b;
    for (let k = 0; k < d; k++) {
      if (k > 0) {
        // `,` straight after the number, as JSON.stringify writes it; else with whitespace.
        if (b[this.i] === 0x2c) this.i++;
        else {
          this.ws();
          if (!this.eat(0x2c)) return false;
        }
        const c = b[this.i];
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.ws();
      }
      if (!this.number(out, at + k)) return false;
    }
    this.ws();
    return this.eat(0x5d);
  }

  /**
   * One JSON number as its float32 value into out[at]; false when it is not a number or the
   * reader is not sure of it. (Storing rather than returning the value keeps V8 from boxing a
   * double per number when this is not inlined.)
   */
  number(out: Float32Array, at: number): boolean {
    const b = this.b;
    let i = this.i;
    const negative = b[i] === 0x2d;
    if (negative) i++;
    // The significant digits as an integer: m, a double (exact while below 2^53, i.e. for up to
    // 15 digits), takes them eight at a time from part, an int32 (short dependency chains);
    // scale is the power of ten to apply.
    let m = 0;
    let part = 0;
    let partDigits = 0;
    let digits = 0; // significant digits read (from the first non-zero one)
    let scale = 0;
    let c = b[i] as number;
    if (c === 0x30) {
      c = b[++i] as number;
    } else if (c >= 0x31 && c <= 0x39) {
      do {
        part = part * 10 + (c - 0x30);
        if (++partDigits === 8) {
          m = m * 1e8 + part;
          part = 0;
          partDigits = 0;
        }
        digits++;
        c = b[++i] as number;
      } while (c >= 0x30 && c <= 0x39);
    } else return false;
    if (c === 0x2e /* . */) {
      c = b[++i] as number;
      if (!(c >= 0x30 && c <= 0x39)) return false;
      if (digits === 0) {
        while (c === 0x30) {
          scale--;
          c = b[++i] as number;
        }
      }
      // Four digits a step while they last (the 16 or so of a JSON.stringify fraction): one
      // little-endian word, checked and converted with a few integer operations.
      const view = (this.words ??= new DataView(b.buffer, b.byteOffset, b.byteLength));
      while (i + 4 <= b.length) {
        const w = view.getUint32(i, true);
        if (!fourDigits(w)) break;
        if (partDigits > 4) {
          m = m * (POW10[partDigits] as number) + part;
          part = 0;
          partDigits = 0;
        }
        part = part * 1e4 + fourDigitsValue(w);
        partDigits += 4;
        if (partDigits === 8) {
          m = m * 1e8 + part;
          part = 0;
          partDigits = 0;
        }
        digits += 4;
        scale -= 4;
        i += 4;
      }
      c = b[i] as number;
      while (c >= 0x30 && c <= 0x39) {
        part = part * 10 + (c - 0x30);
        if (++partDigits === 8) {
          m = m * 1e8 + part;
          part = 0;
          partDigits = 0;
        }
        digits++;
        scale--;
        c = b[++i] as number;
      }
    }
    m = m * (POW10[partDigits] as number) + part;
    if (c === 0x65 || c === 0x45 /* e E */) {
      c = b[++i] as number;
      let expNegative = false;
      if (c === 0x2b || c === 0x2d) {
        expNegative = c === 0x2d;
        c = b[++i] as number;
      }
      if (!(c >= 0x30 && c <= 0x39)) return false;
      let e = 0;
      do {
        if (e < 1000) e = e * 10 + (c - 0x30);
        c = b[++i] as number;
      } while (c >= 0x30 && c <= 0x39);
      scale += expNegative ? -e : e;
    }
    this.i = i;
    if (m === 0) {
      out[at] = negative ? -0 : 0;
      return true;
    }
    if (digits > 20) return false;
    // m * 10^scale with one correctly rounded operation when both are exact doubles; past 15
    // digits m is approximate anyway, and a product by 10^-k (itself rounded) is cheaper than a
    // division.
    const exact = digits <= 15;
    let a: number;
    if (scale >= 0) {
      if (scale > 22) return false;
      a = m * (POW10[scale] as number);
    } else if (scale >= -22) {
      a = exact ? m / (POW10[-scale] as number) : m * (NEG_POW10[-scale] as number);
    } else {
      if (scale < -44) return false;
      a = m / 1e22 / (POW10[-scale - 22] as number);
    }
    if (negative) a = -a;
    const f = Math.fround(a);
    // Exact, or else a is within a few roundings (relative 2^-53 each) of the true value, well
    // inside MARGIN.
    if (exact && scale >= -22 ? !Number.isFinite(f) : !sureOfFloat32(a, f)) return false;
    out[at] = f;
    return true;
  }
}

/** True when the four bytes of w are digits: each has high nibble 3, also after adding 6 (0x3a-0x3f do not). */
function fourDigits(w: number): boolean {
  return ((w & 0xf0f0f0f0) | (((w + 0x06060606) & 0xf0f0f0f0) >>> 4)) === 0x33333333;
}

/** The value of four digit bytes (the first in the low byte of w). */
function fourDigitsValue(w: number): number {
  const d = w & 0x0f0f0f0f;
  const pairs = (d * 10 + (d >>> 8)) & 0x00ff00ff; // first*10+second, third*10+fourth
  return (pairs & 0xff) * 100 + (pairs >>> 16);
}

/**
 * True when every double within MARGIN (relative) of `a` rounds to the same float32 `f`: both
 * ends of that interval do, and rounding is monotonic. Unsure at the edge of the float32 range
 * (an end rounds to Infinity).
 */
function sureOfFloat32(a: number, f: number): boolean {
  return Math.fround(a * (1 + MARGIN)) === f && Math.fround(a * (1 - MARGIN)) === f && Number.isFinite(f);
}
