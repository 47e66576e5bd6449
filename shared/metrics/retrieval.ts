import { MetricError } from './errors.js';
import type { EvaluationInput, Evaluator } from '../ports/evaluator.port.js';

/**
 * Recall@k over embeddings (`recall-at-K`, the paper's retrieval metric, §4.4): each scored
 * row is a query against all the others; it is a hit when at least one of its k nearest
 * neighbours (largest dot product of the L2-normalised embeddings, i.e. cosine; ties to the
 * lower index) shares its label. The mean over queries, in [0, 1]. Reads `input.embeddings`
 * only (`outputs: ['embedding']`); without them it fails METRIC_INPUT_INVALID.
 */
export function recallAtK(k: number): Evaluator {
  const name = `recall-at-${k}`;
  return {
    name,
    direction: 'maximize',
    outputs: ['embedding'],
    evaluate(input: EvaluationInput) {
      const e = input.embeddings;
      if (!e) {
        throw new MetricError('METRIC_INPUT_INVALID', `${name} needs embeddings (the output kind 'embedding')`, {
          reason: 'embedding',
        });
      }
      const { dim, values } = e;
      const n = input.labels.length;
      if (n < 2) return 0;
      // The k best neighbours of each query, kept sorted (k is small): similarity and index.
      const bestSim = new Float64Array(k);
      const bestIdx = new Int32Array(k);
      let hits = 0;
      for (let q = 0; q < n; q++) {
        bestSim.fill(Number.NEGATIVE_INFINITY);
        bestIdx.fill(-1);
        for (let j = 0; j < n; j++) {
          if (j === q) continue;
          let s = 0;
          for (let t = 0; t < dim; t++) s += (values[q * dim + t] as number) * (values[j * dim + t] as number);
          // j comes in increasing order, so an equal similarity never displaces an earlier index.
          if (s <= (bestSim[k - 1] as number)) continue;
          let at = k - 1;
          while (at > 0 && s > (bestSim[at - 1] as number)) {
            bestSim[at] = bestSim[at - 1] as number;
            bestIdx[at] = bestIdx[at - 1] as number;
            at--;
          }
          bestSim[at] = s;
          bestIdx[at] = j;
        }
        const y = input.labels[q];
        for (let a = 0; a < k; a++) {
          const j = bestIdx[a] as number;
          if (j >= 0 && input.labels[j] === y) {
            hits++;
            break;
          }
        }
      }
      return hits / n;
    },
  };
}
