/** A batched objective as meta-test hands it to a peer or the surrogate search: one value per candidate, null = a failed query; `calls()` counts candidates. */
export function batched(f: (x: Float32Array) => number | null) {
  let calls = 0;
  return {
    f: async (xs: Float32Array[]) => {
      calls += xs.length;
      return xs.map(f);
    },
    calls: () => calls,
  };
}
