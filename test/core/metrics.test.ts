import { describe, expect, it } from 'vitest';
import { aucpr, balancedError, f1, jaccard, mcr, topKAccuracy } from '../../shared/metrics/builtins.js';
import { evaluateChecked } from '../../shared/metrics/checked-evaluator.js';
import type { Evaluator } from '../../shared/ports/evaluator.port.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';

const bin = (scores: number[], labels: number[]) => ({
  scores: Float32Array.from(scores),
  labels: Int32Array.from(labels),
  classes: 2,
});

describe('built-in metrics', () => {
  // predictions at 0.5: [1, 1, 0, 0, 1], labels [1, 0, 0, 1, 1] -> tp 2, fp 1, fn 1, tn 1
  const x = bin([0.9, 0.6, 0.2, 0.4, 0.5], [1, 0, 0, 1, 1]);
  it('computes MCR, F1, Jaccard and balanced error by hand', () => {
    expect(mcr.evaluate(x)).toBeCloseTo(2 / 5);
    expect(f1.evaluate(x)).toBeCloseTo((2 * 2) / (2 * 2 + 1 + 1));
    expect(jaccard.evaluate(x)).toBeCloseTo(2 / 4);
    // class 0: 1 of 2 wrong; class 1: 1 of 3 wrong
    expect(balancedError.evaluate(x)).toBeCloseTo((1 / 2 + 1 / 3) / 2);
  });
  it('computes average precision with ties grouped', () => {
    // ranking 0.9(1) 0.6(0) 0.5(1) 0.4(1) 0.2(0): AP = 1/3*1 + 1/3*2/3 + 1/3*3/4
    expect(aucpr.evaluate(x)).toBeCloseTo((1 + 2 / 3 + 3 / 4) / 3);
    expect(aucpr.evaluate(bin([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]))).toBeCloseTo(0.5);
  });
  it('handles no positives and all one class', () => {
    const none = bin([0.1, 0.2], [0, 0]);
    expect(f1.evaluate(none)).toBe(1);
    expect(jaccard.evaluate(none)).toBe(1);
    expect(aucpr.evaluate(none)).toBe(0);
    expect(mcr.evaluate(none)).toBe(0);
    expect(balancedError.evaluate(none)).toBe(0);
    const allPositivePredicted = bin([0.9, 0.9, 0.9], [0, 0, 1]);
    expect(f1.evaluate(allPositivePredicted)).toBeCloseTo(2 / 4);
    const missed = bin([0.1, 0.1], [1, 1]);
    expect(f1.evaluate(missed)).toBe(0);
    expect(jaccard.evaluate(missed)).toBe(0);
    expect(balancedError.evaluate(missed)).toBe(1);
  });
  it('returns average precision when scores hold NaN-like ties and throws on a NaN called directly', () => {
    // The tie loop used to spin forever on NaN (NaN !== NaN).
    const e = (() => {
      try {
        aucpr.evaluate(bin([0.9, Number.NaN, 0.2], [1, 0, 1]));
      } catch (error) {
        return error as { code: string; details: unknown };
      }
    })();
    expect(e).toMatchObject({ code: 'METRIC_INPUT_INVALID', details: { reason: 'not-finite', index: 1 } });
    // Infinite scores make the sort comparator return NaN; the loop still ends.
    expect(aucpr.evaluate(bin([Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, 0.1], [1, 0, 1]))).toBeCloseTo(
      (1 / 2) * (1 / 2) + (1 / 2) * (2 / 3),
    );
  });
  it('matches scikit-learn average_precision_score (not the trapezoidal area)', () => {
    // sklearn.metrics.average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8333333333333333
    expect(aucpr.evaluate(bin([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]))).toBeCloseTo(0.8333333333333333, 12);
    expect(builtinEvaluator('average-precision')).toMatchObject({ ok: true, value: { name: 'aucpr' } });
  });
  it('counts a score of exactly 0.5 as positive', () => {
    expect(f1.evaluate(bin([0.5], [1]))).toBe(1);
    expect(mcr.evaluate(bin([0.5, 0.49999997], [1, 0]))).toBe(0);
  });
  it('breaks multi-class ties by the lowest class index in both mcr and top-1, so top-1 = 1 - mcr', () => {
    // Row 0 ties classes 0 and 2 (label 2), row 1 ties 1 and 2 (label 1), row 2 ties all three (label 0).
    const scores = Float32Array.from([0.4, 0.2, 0.4, 0.1, 0.45, 0.45, 1 / 3, 1 / 3, 1 / 3]);
    const input = { scores, labels: Int32Array.from([2, 1, 0]), classes: 3 };
    expect(mcr.evaluate(input)).toBeCloseTo(1 / 3);
    expect(topKAccuracy(1).evaluate(input)).toBeCloseTo(2 / 3);
    expect(topKAccuracy(2).evaluate(input)).toBe(1);
  });
  it('scores multi-class top-k and MCR from per-class probabilities', () => {
    const scores = Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.3, 0.6, 0.5, 0.4, 0.1]);
    const input = { scores, labels: Int32Array.from([0, 1, 1]), classes: 3 };
    expect(mcr.evaluate(input)).toBeCloseTo(2 / 3);
    expect(topKAccuracy(1).evaluate(input)).toBeCloseTo(1 / 3);
    expect(topKAccuracy(2).evaluate(input)).toBeCloseTo(1);
  });
  it('resolves names and aliases, and names the unknown', () => {
    expect(builtinEvaluator('F-measure').ok && builtinEvaluator('F-measure')).toMatchObject({ value: { name: 'f1' } });
    expect(builtinEvaluator('top-3')).toMatchObject({ ok: true, value: { name: 'top-3-accuracy' } });
    const unknown = builtinEvaluator('nope');
    expect(unknown.ok).toBe(false);
    if (!unknown.ok) {
      expect(unknown.error.code).toBe('UNKNOWN_METRIC');
      expect(unknown.error.message).toContain("'nope'");
    }
  });
});

describe('evaluateChecked', () => {
  const input = bin([0.9], [1]);
  const make = (evaluate: Evaluator['evaluate']): Evaluator => ({ name: 'user', direction: 'maximize', evaluate });
  it('normalises maximised metrics to lower-is-better', async () => {
    const r = await evaluateChecked(
      make(() => 0.8),
      input,
    );
    expect(r).toMatchObject({ ok: true, value: { value: 0.8 } });
    if (r.ok) expect(r.value.normalised).toBeCloseTo(0.2);
  });
  it.each([
    ['NaN', () => Number.NaN, 'EVALUATOR_INVALID_VALUE'],
    ['Infinity', () => Number.POSITIVE_INFINITY, 'EVALUATOR_INVALID_VALUE'],
    ['out of range', () => 1.5, 'EVALUATOR_INVALID_VALUE'],
    ['a string', () => '0.5' as unknown as number, 'EVALUATOR_INVALID_VALUE'],
    [
      'a throw',
      () => {
        throw new Error('boom');
      },
      'EVALUATOR_FAILED',
    ],
    ['a rejection', () => Promise.reject(new Error('late boom')), 'EVALUATOR_FAILED'],
  ])('turns %s into a structured error', async (_name, evaluate, code) => {
    const r = await evaluateChecked(make(evaluate as Evaluator['evaluate']), input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe(code);
  });
  it.each([
    [
      'a NaN score',
      bin([0.9, Number.NaN], [1, 0]),
      'not-finite',
      'user: prediction score 1 is NaN, not a finite number',
    ],
    [
      'an infinite score',
      bin([Number.NEGATIVE_INFINITY], [1]),
      'not-finite',
      'user: prediction score 0 is -Infinity, not a finite number',
    ],
    [
      'a label of 2 in a binary task',
      bin([0.9, 0.1], [1, 2]),
      'label',
      'user: label 1 is 2, outside 0..1 for a 2-class task',
    ],
    [
      'labels [2, 7] in a 3-class task',
      { scores: new Float32Array(6), labels: Int32Array.from([2, 7]), classes: 3 },
      'label',
      'user: label 1 is 7, outside 0..2 for a 3-class task',
    ],
    ['a negative label', bin([0.9], [-1]), 'label', 'user: label 0 is -1, outside 0..1 for a 2-class task'],
    ['mismatched lengths', bin([0.9, 0.1], [1]), 'length', 'user: 2 scores for 1 labels and 2 classes (expected 1)'],
  ])('refuses %s before the evaluator sees it', async (_name, bad, reason, message) => {
    let calls = 0;
    const r = await evaluateChecked(
      make(() => {
        calls++;
        return 0.5;
      }),
      bad,
    );
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect([r.error.code, r.error.message, r.error.details]).toEqual([
        'METRIC_INPUT_INVALID',
        message,
        expect.objectContaining({ reason }),
      ]);
    expect(calls).toBe(0);
  });
  it('times out a slow evaluator', async () => {
    const r = await evaluateChecked(
      make(() => new Promise((res) => setTimeout(() => res(0.5), 500))),
      input,
      20,
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('EVALUATOR_TIMEOUT');
  });
});
