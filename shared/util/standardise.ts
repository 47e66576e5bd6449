/**
 * x standardised in place over its values (mean 0, population std 1; a constant column becomes
 * all 0) and returned: the rule of the context columns and of the context adapter's features.
 */
export function standardise(x: Float64Array): Float64Array {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= Math.max(1, x.length);
  let sq = 0;
  for (const v of x) sq += (v - mean) ** 2;
  const sd = Math.sqrt(sq / Math.max(1, x.length)) || 1;
  for (let i = 0; i < x.length; i++) x[i] = ((x[i] as number) - mean) / sd;
  return x;
}
