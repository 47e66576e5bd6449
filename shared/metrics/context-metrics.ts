import type { SparseDataset } from '../data/dataset.js';
import { contextColumn, withDerivedContext } from './context-columns.js';
import { MetricError } from './errors.js';
import type { EvaluationInput, Evaluator } from '../ports/evaluator.port.js';

/**
 * Built-in metrics that depend on who is scored (issue 19): each reads a per-row context column
 * (`input.context`), derived from the features by a fixed rule (context-columns.ts) or supplied
 * by the user. Binary tasks only; a score >= 0.5 is a positive decision, as for the other
 * built-ins. `contextColumns` names the columns each one needs.
 */
export interface ContextEvaluator extends Evaluator {
  readonly contextColumns: readonly string[];
}

function binaryOnly(name: string, input: EvaluationInput): void {
  if (input.classes !== 2) {
    throw new MetricError(
      'METRIC_INPUT_INVALID',
      `${name} is defined for binary tasks; this task has ${input.classes} classes`,
    );
  }
}

/**
 * Instance cost: a missed positive costs its amount a_i, a false alarm costs 1; normalised by
 * the cost of getting every row wrong (sum of a_i over positives + number of negatives), so the
 * value lies in [0, 1], lower is better. Its Bayes rule: call row i positive when
 * p_i >= 1 / (1 + a_i).
 */
export const instanceCost: ContextEvaluator = {
  name: 'instance-cost',
  direction: 'minimize',
  contextColumns: ['amount'],
  evaluate(input) {
    binaryOnly('instance-cost', input);
    const a = contextColumn('instance-cost', input, 'amount');
    let cost = 0;
    let worst = 0;
    for (let i = 0; i < input.labels.length; i++) {
      const pred = (input.scores[i] as number) >= 0.5;
      if (input.labels[i] === 1) {
        const ai = a[i] as number;
        worst += ai;
        if (!pred) cost += ai;
      } else {
        worst += 1;
        if (pred) cost += 1;
      }
    }
    return worst === 0 ? 0 : cost / worst;
  },
};

/**
 * Group balanced error: within each group (context column `group`, any distinct values) the
 * balanced error (mean of the false-negative and false-positive rates over the classes present),
 * averaged over the groups present. Lower is better. Its optimal rule is one threshold per group.
 */
export const groupBalancedError: ContextEvaluator = {
  name: 'group-balanced-error',
  direction: 'minimize',
  contextColumns: ['group'],
  evaluate(input) {
    binaryOnly('group-balanced-error', input);
    const g = contextColumn('group-balanced-error', input, 'group');
    const stats = new Map<number, Float64Array>(); // [seen0, wrong0, seen1, wrong1]
    for (let i = 0; i < input.labels.length; i++) {
      const key = g[i] as number;
      let s = stats.get(key);
      if (!s) {
        s = new Float64Array(4);
        stats.set(key, s);
      }
      const y = input.labels[i] as number;
      const wrong = (input.scores[i] as number) >= 0.5 ? y === 0 : y === 1;
      s[2 * y] = (s[2 * y] as number) + 1;
      if (wrong) s[2 * y + 1] = (s[2 * y + 1] as number) + 1;
    }
    let sum = 0;
    for (const s of stats.values()) sum += groupBer(s);
    return stats.size === 0 ? 0 : sum / stats.size;
  },
};

/** Balanced error of one group from [seen0, wrong0, seen1, wrong1]. */
export function groupBer(s: Float64Array): number {
  let total = 0;
  let present = 0;
  for (let c = 0; c < 2; c++) {
    const seen = s[2 * c] as number;
    if (seen > 0) {
      total += (s[2 * c + 1] as number) / seen;
      present++;
    }
  }
  return present === 0 ? 0 : total / present;
}

/** The share of the scored rows that the top-value metric looks at. */
export const TOP_SHARE = 0.05;

/**
 * Value captured in the top 5 %: the ceil(5 % of n) highest scores (ties broken by position)
 * capture the value v_i (context column `value`) of each true positive among them; divided by
 * the most any choice of that many rows could capture (the largest v_i over positives). Higher
 * is better; 1 when there is nothing to capture.
 */
export const topValue: ContextEvaluator = {
  name: 'top5-value',
  direction: 'maximize',
  contextColumns: ['value'],
  evaluate(input) {
    binaryOnly('top5-value', input);
    const v = contextColumn('top5-value', input, 'value');
    const n = input.labels.length;
    const k = Math.ceil(TOP_SHARE * n);
    const order = Array.from({ length: n }, (_, i) => i).sort(
      (a, b) => (input.scores[b] as number) - (input.scores[a] as number) || a - b,
    );
    let got = 0;
    for (let j = 0; j < k; j++) {
      const i = order[j] as number;
      if (input.labels[i] === 1) got += v[i] as number;
    }
    const best = positiveValues(input.labels, v)
      .sort((a, b) => b - a)
      .slice(0, k)
      .reduce((a, b) => a + b, 0);
    return best === 0 ? 1 : Math.min(1, got / best);
  },
};

function positiveValues(labels: Int32Array, v: Float64Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) out.push(v[i] as number);
  return out;
}

export const contextEvaluators: readonly ContextEvaluator[] = [instanceCost, groupBalancedError, topValue];

/** The context columns an evaluator needs ([] for metrics of (score, label) pairs only). */
export function requiredContext(evaluator: Evaluator): readonly string[] {
  return (evaluator as Partial<ContextEvaluator>).contextColumns ?? [];
}

/**
 * The data set with the context columns a run needs and its user did not supply, derived by
 * their documented rules (context-columns.ts): the evaluator's, and `group` from feature
 * `groupFeature` when one is given. Every loader of a run's data (the run commands, training
 * jobs in a trainer worker or the training container) goes through it.
 */
export function withContextFor(ds: SparseDataset, evaluator: Evaluator, groupFeature?: number): SparseDataset {
  const columns = [...requiredContext(evaluator), ...(groupFeature !== undefined ? ['group'] : [])];
  return columns.length > 0 ? withDerivedContext(ds, columns, groupFeature) : ds;
}
