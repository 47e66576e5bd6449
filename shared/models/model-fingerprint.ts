import type { AdaptedModel } from './adapted-model.js';

/** A stable hash of the pre-trained model (its predictions at phi = 0 on the observation rows). */
export function modelFingerprint(model: AdaptedModel, rows: Int32Array): string {
  const p = model.predict(new Float32Array(model.d), 1, rows);
  const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return `fnv1a32:${h.toString(16).padStart(8, '0')}:${bytes.length}`;
}
