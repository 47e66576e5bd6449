import { contextEvaluators } from './context-metrics.js';
import { MetricError } from './errors.js';
import type { EvaluationInput, Evaluator } from '../ports/evaluator.port.js';

/**
 * Built-in metrics. Binary ones threshold the positive-class probability at 0.5: a score of
 * exactly 0.5 counts as positive (`score >= 0.5`); `aucpr` uses the scores. Multi-class
 * predictions are the argmax of the per-class scores, ties going to the lowest class index, and
 * top-k ranks classes the same way (score descending, then index), so `top-1-accuracy` is
 * exactly `1 - mcr`. Inputs are checked before any evaluator runs (checkEvaluationInput, called
 * by evaluateChecked): finite scores, labels within 0..classes-1.
 * Conventions for degenerate inputs, chosen so each value stays in [0, 1]:
 * - F1 / Jaccard with no positives in labels *and* predictions: 1 (nothing to find, nothing wrong).
 * - AUCPR (average precision) with no positive labels: 0 (precision is undefined; documented).
 * - Balanced error averages the error of the classes present in the labels.
 * The context metrics (instance-cost, group-balanced-error, top5-value) also read per-row
 * context columns: context-metrics.ts.
 */

interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

function binaryOnly(name: string, input: EvaluationInput): void {
  if (input.classes !== 2) {
    throw new MetricError(
      'METRIC_INPUT_INVALID',
      `${name} is defined for binary tasks; this task has ${input.classes} classes`,
    );
  }
}

function confusion(input: EvaluationInput, name: string, threshold = 0.5): Confusion {
  binaryOnly(name, input);
  const { scores, labels } = input;
  const c = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (let i = 0; i < labels.length; i++) {
    const pred = (scores[i] as number) >= threshold;
    const pos = labels[i] === 1;
    if (pred && pos) c.tp++;
    else if (pred) c.fp++;
    else if (pos) c.fn++;
    else c.tn++;
  }
  return c;
}

function argmax(scores: Float32Array, row: number, classes: number): number {
  let best = 0;
  let bestV = Number.NEGATIVE_INFINITY;
  for (let c = 0; c < classes; c++) {
    const v = scores[row * classes + c] as number;
    if (v > bestV) {
      bestV = v;
      best = c;
    }
  }
  return best;
}

function predictedClass(input: EvaluationInput, i: number): number {
  return input.classes === 2 ? ((input.scores[i] as number) >= 0.5 ? 1 : 0) : argmax(input.scores, i, input.classes);
}

export const mcr: Evaluator = {
  name: 'mcr',
  direction: 'minimize',
  evaluate(input) {
    const n = input.labels.length;
    if (n === 0) return 0;
    let wrong = 0;
    for (let i = 0; i < n; i++) if (predictedClass(input, i) !== input.labels[i]) wrong++;
    return wrong / n;
  },
};

export const f1: Evaluator = {
  name: 'f1',
  direction: 'maximize',
  evaluate(input) {
    const { tp, fp, fn } = confusion(input, 'f1');
    const denom = 2 * tp + fp + fn;
    return denom === 0 ? 1 : (2 * tp) / denom;
  },
};

/** Positive-class Jaccard (intersection over union of predicted and true positives). */
export const jaccard: Evaluator = {
  name: 'jaccard',
  direction: 'maximize',
  evaluate(input) {
    const { tp, fp, fn } = confusion(input, 'jaccard');
    const denom = tp + fp + fn;
    return denom === 0 ? 1 : tp / denom;
  },
};

/**
 * Average precision (AP), named `aucpr` (alias `average-precision`, `ap`): the step-wise sum
 * over distinct score thresholds of (recall step) x precision, ties grouped, i.e. scikit-learn's
 * `average_precision_score`, not the trapezoidal area under the precision-recall curve.
 */
export const aucpr: Evaluator = {
  name: 'aucpr',
  direction: 'maximize',
  evaluate(input) {
    binaryOnly('aucpr', input);
    const { scores, labels } = input;
    const n = labels.length;
    for (let i = 0; i < n; i++) {
      // Called directly (not through evaluateChecked): a NaN has no place in a ranking.
      if (Number.isNaN(scores[i] as number)) {
        throw new MetricError('METRIC_INPUT_INVALID', `aucpr: prediction score ${i} is NaN`, {
          reason: 'not-finite',
          index: i,
        });
      }
    }
    let positives = 0;
    for (let i = 0; i < n; i++) if (labels[i] === 1) positives++;
    if (positives === 0) return 0;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number));
    let tp = 0;
    let fp = 0;
    let ap = 0;
    let prevRecall = 0;
    let i = 0;
    while (i < n) {
      const s = scores[order[i] as number];
      // Group ties: one threshold per distinct score. The first element always counts, so the
      // loop advances whatever the scores compare like.
      do {
        if (labels[order[i] as number] === 1) tp++;
        else fp++;
        i++;
      } while (i < n && scores[order[i] as number] === s);
      const recall = tp / positives;
      ap += (recall - prevRecall) * (tp / (tp + fp));
      prevRecall = recall;
    }
    return Math.min(1, Math.max(0, ap));
  },
};

/** Mean over the classes present of each class's error rate (1 - balanced accuracy). */
export const balancedError: Evaluator = {
  name: 'balanced-error',
  direction: 'minimize',
  evaluate(input) {
    const k = input.classes;
    const seen = new Float64Array(k);
    const wrong = new Float64Array(k);
    for (let i = 0; i < input.labels.length; i++) {
      const y = input.labels[i] as number;
      seen[y] = (seen[y] as number) + 1;
      if (predictedClass(input, i) !== y) wrong[y] = (wrong[y] as number) + 1;
    }
    let sum = 0;
    let present = 0;
    for (let c = 0; c < k; c++) {
      if ((seen[c] as number) > 0) {
        sum += (wrong[c] as number) / (seen[c] as number);
        present++;
      }
    }
    return present === 0 ? 0 : sum / present;
  },
};

/** Top-k accuracy for multi-class scores (for binary data, top-1 = accuracy and top-2 = 1). */
export function topKAccuracy(k: number): Evaluator {
  return {
    name: `top-${k}-accuracy`,
    direction: 'maximize',
    evaluate(input) {
      const n = input.labels.length;
      if (n === 0) return 1;
      if (input.classes === 2) return k >= 2 ? 1 : 1 - (mcr.evaluate(input) as number);
      let hits = 0;
      for (let i = 0; i < n; i++) {
        const y = input.labels[i] as number;
        const sy = input.scores[i * input.classes + y] as number;
        // Classes ranked above y: a higher score, or the same score and a lower index (as argmax).
        let above = 0;
        for (let c = 0; c < input.classes; c++) {
          const sc = input.scores[i * input.classes + c] as number;
          if (sc > sy || (sc === sy && c < y)) above++;
        }
        if (above < k) hits++;
      }
      return hits / n;
    },
  };
}

export const builtinEvaluators: readonly Evaluator[] = [
  mcr,
  f1,
  jaccard,
  aucpr,
  balancedError,
  topKAccuracy(1),
  topKAccuracy(3),
  topKAccuracy(5),
  // Metrics of who is scored (per-row context columns): context-metrics.ts.
  ...contextEvaluators,
];
