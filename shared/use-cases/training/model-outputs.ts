import type { AdaptedModel } from '../../models/adapted-model.js';
import type { EvaluationInput, OutputKind } from '../../ports/evaluator.port.js';
import { UseCaseError } from './errors.js';

/** One model output set for the evaluator: probabilities, and embeddings when the metric reads them. */
export interface ModelOutputs {
  scores: Float32Array;
  embeddings?: NonNullable<EvaluationInput['embeddings']>;
}

/** Whether a metric reads embeddings (its `outputs` include 'embedding': recall-at-K, user modules that ask). */
export function readsEmbeddings(metric: { readonly outputs?: readonly OutputKind[] | undefined }): boolean {
  return metric.outputs?.includes('embedding') ?? false;
}

/** The metric reads embeddings and the model has none (probeEvaluator returns it before any query). */
export const modelHasNoEmbeddings = (): UseCaseError =>
  new UseCaseError(
    'MODEL_HAS_NO_EMBEDDINGS',
    'the metric reads embeddings and this model has no embedding head (use --architecture convnet: digits, fashion-mnist)',
  );

/**
 * The outputs of n phis on the given rows, one set per phi: `scores` (as given, else
 * model.predict) split per phi, and, when `embeddings` is true, the model's L2-normalised
 * embeddings of the same rows (model.embed). A model without an embedding head fails
 * MODEL_HAS_NO_EMBEDDINGS.
 */
export function modelOutputs(
  model: AdaptedModel,
  phis: Float32Array,
  n: number,
  rows: Int32Array,
  embeddings: boolean,
  scores: Float32Array = model.predict(phis, n, rows),
): ModelOutputs[] {
  const per = scores.length / n;
  const emb = embeddings ? embeddingsOf(model, phis, n, rows) : undefined;
  return Array.from({ length: n }, (_, i) => ({
    scores: scores.slice(i * per, (i + 1) * per),
    ...(emb ? { embeddings: emb[i] as NonNullable<ModelOutputs['embeddings']> } : {}),
  }));
}

/** The model's embeddings of the rows under each of n phis, one `{ dim, values }` per phi. */
export function embeddingsOf(
  model: AdaptedModel,
  phis: Float32Array,
  n: number,
  rows: Int32Array,
): NonNullable<ModelOutputs['embeddings']>[] {
  const dim = model.embedDim;
  if (model.embed === undefined || dim === undefined) {
    throw modelHasNoEmbeddings();
  }
  const values = model.embed(phis, n, rows);
  const per = rows.length * dim;
  return Array.from({ length: n }, (_, i) => ({ dim, values: values.slice(i * per, (i + 1) * per) }));
}
