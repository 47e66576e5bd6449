/**
 * Small typed arrays carved from shared 64 KiB slabs, the way Node pools small Buffers.
 *
 * A fresh `new Float32Array(n)` past 64 bytes gets its own ArrayBuffer with a backing store
 * outside the JS heap: about 0.4 µs to create and more work for the garbage collector to free,
 * which a served `gradient` request would pay several times over (its rows, values, gradients
 * and answer). A slice of a slab costs a typed-array view. Slices are never handed out twice,
 * and a slab lives as long as any slice of it, so a slice is as safe to keep as a fresh array
 * (it may keep up to 64 KiB alive with it). Arrays past a quarter slab get their own buffer.
 *
 * Contents are zeroed only the first time a slab is used, like `new Float32Array(n)`: every
 * slice starts at zero.
 */
const SLAB_BYTES = 64 * 1024;
const OWN_BUFFER_BYTES = SLAB_BYTES / 4;

let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

/** `bytes` zeroed bytes, 8-byte aligned (so any typed array may view them). */
function take(bytes: number): { buffer: ArrayBuffer; offset: number } {
  if (bytes > OWN_BUFFER_BYTES) return { buffer: new ArrayBuffer(bytes), offset: 0 };
  if (used + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const offset = used;
  used += (bytes + 7) & ~7;
  return { buffer: slab, offset };
}

/** A zeroed Float32Array of length n. */
export function slabFloat32(n: number): Float32Array {
  const { buffer, offset } = take(n * 4);
  return new Float32Array(buffer, offset, n);
}

/** A zeroed Uint8Array of length n. */
export function slabBytes(n: number): Uint8Array {
  const { buffer, offset } = take(n);
  return new Uint8Array(buffer, offset, n);
}
