/**
 * Float32 values as JSON number text: at most 9 significant digits, trailing zeros dropped, the
 * layout JS uses (see json-bytes.ts for why).
 */

/** Powers of ten as doubles: exact through 1e22, the nearest doubles past that. */
const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
  1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
];

/**
 * The most bytes one number takes in `float32s`: `-0.00000123456789`, 21 integer digits and a
 * sign, or a double out of float32 range written as JS does (`-1.2345678901234567e-300`).
 */
export const MAX_F32_BYTES = 25;

export function assertFinite(v: number): void {
  if (!Number.isFinite(v)) throw new RangeError(`cannot write ${v} as a JSON number`);
}

/** `10^k` for k = -31..53 as a factor (index k + 31, k >= 0) or a divisor (k < 0): the range float32 needs. */
const MUL = new Float64Array(85);
const DIV = new Float64Array(85);
for (let k = -31; k <= 53; k++) {
  if (k >= 0) MUL[k + 31] = pow10(k);
  else DIV[k + 31] = pow10(-k);
}

/** 10^k for k in 0..53: exact through 22, within two roundings above. */
function pow10(k: number): number {
  return k <= 22 ? (POW10[k] as number) : 1e22 * (POW10[k - 22] as number);
}
/** round(v * 10^(8 - e)): nine significant digits of v when e is its decimal exponent. */
function nineDigits(v: number, e: number): number {
  const k = 39 - e; // 8 - e + 31
  return Math.round(k >= 31 ? v * (MUL[k] as number) : v / (DIV[k] as number));
}

/** Per biased float32 exponent: the decimal exponent of its smallest value, and 10^(that + 1). */
const DECADE = new Int8Array(256);
const NEXT_DECADE = new Float64Array(256);
for (let biased = 1; biased < 255; biased++) {
  const e = Math.floor((biased - 127) * Math.LOG10E * Math.LN2);
  DECADE[biased] = e;
  NEXT_DECADE[biased] = e + 1 >= 0 ? pow10(e + 1) : 1 / pow10(-(e + 1));
}

/** The ASCII bytes of 0000..9999 as little-endian 32-bit words (one store writes four digits). */
const QUAD = new Uint32Array(10000);
for (let i = 0; i < 10000; i++) {
  const t = String(i).padStart(4, '0');
  QUAD[i] = t.charCodeAt(0) | (t.charCodeAt(1) << 8) | (t.charCodeAt(2) << 16) | (t.charCodeAt(3) << 24);
}
const ZERO_POINT_ZEROS = 0x30 | (0x2e << 8) | (0x30 << 16) | (0x30 << 24); // "0.00"
const FOUR_ZEROS = 0x30303030; // "0000"

const bits32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bits32.buffer);

/**
 * Writes the float32 value v (a double holding a float32) at buf[p] (`view` over the same bytes,
 * with 25 bytes of room), returns the end. The digits are `round(|v| * 10^(8 - e))` for the
 * decimal exponent e of v, computed in doubles: off from the exactly rounded nine digits by at
 * most one in the last digit, and then only when the exact value lies within 1e-6 of a rounding
 * tie; even so the decimal is within 0.51e-8 (relative) of v, far inside the 2^-25 that
 * separates v from the next float32's rounding boundary, so it still reads back as v.
 *
 * This is the common case (gradients: 1e-6 <= |v| < 1, written `0.000ddddddddd` in word-sized
 * stores, then trailing zeros dropped), small enough for V8 to inline into the loop; everything
 * else goes to writeFloat32Slow.
 */
export function writeFloat32(buf: Uint8Array, view: DataView, p: number, v: number): number {
  const a = v < 0 ? -v : v;
  if (a >= 1e-6 && a < 1) {
    bits32[0] = a;
    const biased = ((bitsU32[0] as number) >>> 23) & 0xff;
    const e = (DECADE[biased] as number) + (a >= (NEXT_DECADE[biased] as number) ? 1 : 0);
    const digits = Math.round(a * (MUL[39 - e] as number)) | 0; // 10^(8 - e), an exact power
    if (digits >= 100_000_000 && digits < 1_000_000_000) {
      // A minus sign, kept only when negative (no branch: the sign is as good as random).
      buf[p] = 0x2d;
      p += v < 0 ? 1 : 0;
      // "0.00" + "0000" covers the longest prefix (0.000000); the digits overwrite what is extra.
      view.setUint32(p, ZERO_POINT_ZEROS, true);
      view.setUint32(p + 4, FOUR_ZEROS, true);
      p += 1 - e;
      const hi = (digits / 100000) | 0;
      const lo = digits - hi * 100000;
      const mid = (lo / 10000) | 0;
      view.setUint32(p, QUAD[hi] as number, true);
      buf[p + 4] = 0x30 + mid;
      const last = QUAD[lo - mid * 10000] as number;
      view.setUint32(p + 5, last, true);
      p += 9;
      // Trailing zeros (one value in ten) are dropped; the first digit is not 0.
      if (last >>> 24 === 0x30) while (buf[p - 1] === 0x30) p--;
      return p;
    }
  }
  return writeFloat32Slow(buf, p, v);
}

/** writeFloat32 for every value: any exponent, trailing zeros, non-float32 doubles. */
function writeFloat32Slow(buf: Uint8Array, p: number, v: number): number {
  if (v === 0) {
    buf[p] = 0x30; // 0 and -0 alike, as JSON.stringify
    return p + 1;
  }
  assertFinite(v);
  if (v < 0) {
    buf[p++] = 0x2d;
    v = -v;
  }
  if (v < 1e-45 || v > 3.5e38) return writeAscii(buf, p, `${v}`); // not a float32: as JS writes it
  bits32[0] = v;
  const biased = ((bitsU32[0] as number) >>> 23) & 0xff;
  let e: number;
  if (biased === 0) {
    e = Math.floor(Math.log10(v)); // subnormal
  } else {
    e = DECADE[biased] as number;
    if (v >= (NEXT_DECADE[biased] as number)) e++;
  }
  let m = nineDigits(v, e);
  // An inexact power of ten can leave e one off at a decade's edge, and rounding can carry into
  // a tenth digit (9.999999999 -> 10.0000000).
  while (m >= 1e9) m = nineDigits(v, ++e);
  while (m < 1e8) m = nineDigits(v, --e);
  let digits = m | 0;
  let n = 9;
  while (digits % 10 === 0) {
    digits = (digits / 10) | 0;
    n--;
  }
  for (let i = n - 1; i >= 0; i--) {
    const rest = (digits / 10) | 0;
    DIGITS[i] = 0x30 + digits - rest * 10;
    digits = rest;
  }
  if (e >= 0 && e < 21) {
    // Integer part: e + 1 digits, padded with zeros; the rest after a point.
    for (let i = 0; i <= e; i++) buf[p++] = i < n ? (DIGITS[i] as number) : 0x30;
    if (n > e + 1) {
      buf[p++] = 0x2e;
      for (let i = e + 1; i < n; i++) buf[p++] = DIGITS[i] as number;
    }
    return p;
  }
  if (e < 0 && e >= -6) {
    buf[p++] = 0x30;
    buf[p++] = 0x2e;
    for (let i = -1; i > e; i--) buf[p++] = 0x30;
    for (let i = 0; i < n; i++) buf[p++] = DIGITS[i] as number;
    return p;
  }
  buf[p++] = DIGITS[0] as number;
  if (n > 1) {
    buf[p++] = 0x2e;
    for (let i = 1; i < n; i++) buf[p++] = DIGITS[i] as number;
  }
  buf[p++] = 0x65;
  buf[p++] = e < 0 ? 0x2d : 0x2b;
  const a = Math.abs(e);
  if (a >= 10) buf[p++] = 0x30 + Math.floor(a / 10);
  buf[p++] = 0x30 + (a % 10);
  return p;
}

const DIGITS = new Uint8Array(9);

function writeAscii(buf: Uint8Array, p: number, text: string): number {
  for (let i = 0; i < text.length; i++) buf[p++] = text.charCodeAt(i);
  return p;
}
