import type { AdaptedModel } from '../../models/adapted-model.js';

/**
 * The decision-shifted point in phi: the threshold t (binary) written into the output bias so
 * that phi's decision at 0.5 is the pre-trained model's at t, or (multi-class, or no threshold)
 * the prior correction log(prior_c) + const per class; zero when the adapter has no output bias.
 */
export function decisionShiftPhi(
  model: Pick<AdaptedModel, 'd' | 'classes' | 'logitShift'>,
  threshold: number | null,
  prior: ArrayLike<number>,
): Float32Array {
  const phi = new Float32Array(model.d);
  const out = model.logitShift;
  if (!out) return phi;
  if (model.classes === 2) {
    const pi = prior[1] as number;
    const shift = threshold !== null ? -Math.log(threshold / (1 - threshold)) : Math.log(pi / (1 - pi));
    phi[out.index] = shift / out.scale;
    return phi;
  }
  for (let c = 0; c < out.count; c++) phi[out.index + c] = Math.log(Math.max(1e-12, prior[c] as number)) / out.scale;
  return phi;
}
