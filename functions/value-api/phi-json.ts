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

const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
  1e21, 1e22,
];
/** Relative error bound of the approximation of long numbers, with room to spare (see readNumber). */
const MARGIN = 2 ** -48;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Reads `{"phi":...}` as float32 rows of length d; undefined when it is not that plain shape. */
export function readPhiJson(bytes: Uint8Array, d: number, maxRows: number): PhiRows | undefined {
  const r = new Reader(bytes);
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
    data = new Float32Array(d);
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
  constructor(readonly b: Uint8Array) {}

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
    for (let k = 0; k < d; k++) {
      if (k > 0) {
        this.ws();
        if (!this.eat(0x2c)) return false;
        this.ws();
      }
      const x = this.number();
      if (x === undefined) return false;
      out[at + k] = x;
    }
    this.ws();
    return this.eat(0x5d);
  }

  /** One JSON number as its float32 value, or undefined (not a number, or not sure of it). */
  number(): number | undefined {
    const b = this.b;
    let i = this.i;
    const negative = b[i] === 0x2d;
    if (negative) i++;
    // The significant digits as an integer: m, then eight at a time in int32 chunks (short
    // dependency chains); exact while below 2^53, i.e. for up to 15 digits.
    let m = 0;
    let chunk = 0;
    let inChunk = 0;
    let digits = 0; // significant digits read (from the first non-zero one)
    let scale = 0; // power of ten to apply to m
    let c = b[i] as number;
    if (c === 0x30) {
      c = b[++i] as number;
    } else if (c >= 0x31 && c <= 0x39) {
      do {
        chunk = chunk * 10 + (c - 0x30);
        if (++inChunk === 8) {
          m = m * 1e8 + chunk;
          chunk = 0;
          inChunk = 0;
        }
        digits++;
        c = b[++i] as number;
      } while (c >= 0x30 && c <= 0x39);
    } else return undefined;
    if (c === 0x2e /* . */) {
      c = b[++i] as number;
      if (!(c >= 0x30 && c <= 0x39)) return undefined;
      if (digits === 0) {
        while (c === 0x30) {
          scale--;
          c = b[++i] as number;
        }
      }
      while (c >= 0x30 && c <= 0x39) {
        chunk = chunk * 10 + (c - 0x30);
        if (++inChunk === 8) {
          m = m * 1e8 + chunk;
          chunk = 0;
          inChunk = 0;
        }
        digits++;
        scale--;
        c = b[++i] as number;
      }
    }
    m = m * (POW10[inChunk] as number) + chunk;
    if (c === 0x65 || c === 0x45 /* e E */) {
      c = b[++i] as number;
      let expNegative = false;
      if (c === 0x2b || c === 0x2d) {
        expNegative = c === 0x2d;
        c = b[++i] as number;
      }
      if (!(c >= 0x30 && c <= 0x39)) return undefined;
      let e = 0;
      do {
        if (e < 1000) e = e * 10 + (c - 0x30);
        c = b[++i] as number;
      } while (c >= 0x30 && c <= 0x39);
      scale += expNegative ? -e : e;
    }
    this.i = i;
    if (m === 0) return negative ? -0 : 0;
    if (digits > 20) return undefined;
    // m * 10^scale with one correctly rounded operation when both are exact doubles.
    const exact = digits <= 15;
    let a: number;
    if (scale >= 0) {
      if (scale > 22) return undefined;
      a = m * (POW10[scale] as number);
    } else if (scale >= -22) {
      a = m / (POW10[-scale] as number);
    } else {
      if (scale < -44) return undefined;
      a = m / 1e22 / (POW10[-scale - 22] as number);
    }
    if (negative) a = -a;
    const f = Math.fround(a);
    if (exact && scale >= -22) return Number.isFinite(f) ? f : undefined;
    // a is within a few roundings (relative 2^-53 each) of the true value, well inside MARGIN.
    return sureOfFloat32(a, f) ? f : undefined;
  }
}

/**
 * True when every double within MARGIN (relative) of `a` rounds to the same float32 `f`: `f` is a
 * normal float32 and `a` is farther than the margin from both rounding boundaries around it.
 */
function sureOfFloat32(a: number, f: number): boolean {
  const abs = Math.abs(f);
  if (!(abs >= 2 ** -120 && abs <= 2 ** 120)) return false;
  f32[0] = abs;
  const bits = u32[0] as number;
  u32[0] = bits + 1;
  const up = (f32[0] as number) - abs;
  u32[0] = bits - 1;
  const down = abs - (f32[0] as number);
  const x = Math.abs(a);
  const slack = x * MARGIN;
  return x >= abs ? x - abs + slack < up / 2 : abs - x + slack < down / 2;
}
