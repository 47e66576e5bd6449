/**
 * Reptile's outer update (Stage 4): after inner steps on one task took the weights from w to
 * w~, move w <- w + eta (w~ - w). With eta = 1 this is plain sequential SGD on the tasks.
 */
export function reptileInterpolate(
  w: readonly Float32Array[],
  adapted: readonly Float32Array[],
  eta: number,
): Float32Array[] {
  return w.map((wi, i) => {
    const ai = adapted[i] as Float32Array;
    if (ai.length !== wi.length) throw new Error('reptileInterpolate: shapes differ');
    const out = new Float32Array(wi.length);
    for (let j = 0; j < wi.length; j++) out[j] = (wi[j] as number) + eta * ((ai[j] as number) - (wi[j] as number));
    return out;
  });
}

/** The outer step size after `done` of `total` tasks: eta0 decayed linearly to 0. */
export function reptileEta(eta0: number, done: number, total: number): number {
  return eta0 * Math.max(0, 1 - done / Math.max(1, total));
}
