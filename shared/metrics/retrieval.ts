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
      // The k best neighbours of every query, kept sorted (k is small): similarity and index.
      // Each pair's similarity is computed once and offered to both rows; every row sees its
      // candidates in increasing index order, so an equal similarity never displaces an earlier index.
      const bestSim = new Float64Array(n * k).fill(Number.NEGATIVE_INFINITY);
      const bestIdx = new Int32Array(n * k).fill(-1);
      const offer = (q: number, j: number, s: number) => {
        const base = q * k;
        if (s <= (bestSim[base + k - 1] as number)) return;
        let at = k - 1;
        while (at > 0 && s > (bestSim[base + at - 1] as number)) {
          bestSim[base + at] = bestSim[base + at - 1] as number;
          bestIdx[base + at] = bestIdx[base + at - 1] as number;
          at--;
        }
        bestSim[base + at] = s;
        bestIdx[base + at] = j;
      };
      for (let q = 0; q < n; q++) {
        const qo = q * dim;
        for (let j = q + 1; j < n; j++) {
          const jo = j * dim;
          let s = 0;
          for (let t = 0; t < dim; t++) s += (values[qo + t] as number) * (values[jo + t] as number);
          offer(q, j, s);
          offer(j, q, s);
        }
      }
      let hits = 0;
      for (let q = 0; q < n; q++) {
        const y = input.labels[q];
        for (let a = 0; a < k; a++) {
          const j = bestIdx[q * k + a] as number;
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
