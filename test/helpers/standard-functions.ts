/** Standard test functions for the CMA-ES tests; test/helpers/cmaes_reference.py defines the same. */
export const sphere = (x: Float64Array): number => x.reduce((s, v) => s + v * v, 0);

/** Axis-parallel ellipsoid, condition number 1e6. */
export const ellipsoid = (x: Float64Array): number =>
  x.reduce((s, v, i) => s + 10 ** ((6 * i) / Math.max(1, x.length - 1)) * v * v, 0);

/** Rosenbrock: global minimum 0 at (1, ..., 1); for 4 <= d <= 30 also a local one near (-1, 1, ..., 1). */
export const rosenbrock = (x: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < x.length - 1; i++)
    s += 100 * ((x[i + 1] as number) - (x[i] as number) ** 2) ** 2 + (1 - (x[i] as number)) ** 2;
  return s;
};

export const standardFunctions = { sphere, ellipsoid, rosenbrock } as const;
export type StandardFunction = keyof typeof standardFunctions;
