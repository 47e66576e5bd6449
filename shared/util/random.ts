/**
 * Seeded pseudo-random numbers (mulberry32 + Box-Muller): every random choice in the method
 * (splits, batches, phi_0, ES perturbations) flows from one of these so runs are reproducible.
 */
export interface RngState {
  /** The 32-bit mulberry32 state. */
  s: number;
  /** The second Box-Muller normal, when one is pending. */
  spare: number | null;
}

export class Rng {
  private s: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.s = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  }

  /** Everything the stream depends on (JSON-safe: a double round-trips through JSON exactly). */
  state(): RngState {
    return { s: this.s, spare: this.spare ?? null };
  }

  /** A generator that continues exactly where `state()` was taken. */
  static fromState(state: RngState): Rng {
    const rng = new Rng(0);
    rng.s = state.s >>> 0;
    rng.spare = state.spare ?? undefined;
    return rng;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal. */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u <= Number.EPSILON) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  normals(n: number, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * std;
    return out;
  }

  /** A derived generator, so that adding draws in one place does not shift another's stream. */
  fork(salt: number): Rng {
    return new Rng(Math.floor(this.next() * 4294967296) ^ Math.imul(salt + 1, 0x85ebca6b));
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }

  /** k distinct integers from [lo, hi), sorted. */
  sampleDistinct(lo: number, hi: number, k: number): number[] {
    const pool = Array.from({ length: hi - lo }, (_, i) => lo + i);
    this.shuffle(pool);
    return pool.slice(0, Math.min(k, pool.length)).sort((a, b) => a - b);
  }
}
