import { err, ok, type Result } from '../util/result.js';
import { builtinEvaluators, topKAccuracy } from './builtins.js';
import { MetricError } from './errors.js';
import type { Evaluator } from '../ports/evaluator.port.js';

const aliases: Record<string, string> = {
  'misclassification-rate': 'mcr',
  error: 'mcr',
  'f-measure': 'f1',
  fmeasure: 'f1',
  jac: 'jaccard',
  iou: 'jaccard',
  ap: 'aucpr',
  'average-precision': 'aucpr',
  ber: 'balanced-error',
  accuracy: 'top-1-accuracy',
};

/** Names of the built-in evaluators (top-k accepts any k as `top-K-accuracy`). */
export function builtinNames(): string[] {
  return builtinEvaluators.map((e) => e.name);
}

/** Looks up a built-in evaluator by name or alias. */
export function builtinEvaluator(name: string): Result<Evaluator, MetricError> {
  const key = aliases[name.toLowerCase()] ?? name.toLowerCase();
  const found = builtinEvaluators.find((e) => e.name === key);
  if (found) return ok(found);
  const topk = /^top-?(\d+)(-accuracy)?$/.exec(key);
  if (topk && Number(topk[1]) >= 1) return ok(topKAccuracy(Number(topk[1])));
  return err(
    new MetricError('UNKNOWN_METRIC', `unknown metric '${name}' (built-ins: ${builtinNames().join(', ')})`, {
      name,
    }),
  );
}
