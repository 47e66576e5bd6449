import { evaluationInput, type ScoredRows, sliceContext } from '../../metrics/context-columns.js';
import { evaluateWithRetries } from '../../metrics/retry-policy.js';
import { err, ok, type Result } from '../../util/result.js';
import { UseCaseError } from './errors.js';
import type { MetaTestConfig, MetaTestDeps } from './meta-test-config.js';
import { type ModelOutputs, modelOutputs, readsEmbeddings } from './model-outputs.js';

/** The selection rows and their even/odd halves (the 'confirm' endpoint rule's two looks). */
export type SelectionSplit = 'val' | 'val-even' | 'val-odd';

/**
 * How one meta-test seed scores phi: in-process (test, diagnostics) or through the oracle
 * (counted). Every score goes with the model's embeddings of the same rows when the metric
 * reads them (ModelOutputs); a decision shift of the scores leaves the embeddings as they are.
 */
export interface SeedQueries {
  /** The rows and labels as the evaluator sees them (with their context columns). */
  on(rows: Int32Array, labels: Int32Array): ScoredRows;
  /** The model's outputs at phi on the given rows (a split's, or others such as the observation rows). */
  outputs(phi: Float32Array, rows: Int32Array): ModelOutputs;
  predict(phi: Float32Array, split: 'val' | 'test'): ModelOutputs;
  /** The metric in-process, with the evaluator retry policy; null (a missing value) if it still fails. */
  scoreScores(outputs: ModelOutputs, split: 'val' | 'test'): Promise<number | null>;
  score(phi: Float32Array, split: 'val' | 'test'): Promise<number | null>;
  /** Real validation queries through the oracle; failed ones count as spent and are never chosen. */
  queryScores(
    outputSets: ModelOutputs[],
    taskId: number,
    split?: SelectionSplit | 'observe',
  ): Promise<(number | null)[]>;
  queryVal(phis: Float32Array[], taskId: number, split?: SelectionSplit): Promise<(number | null)[]>;
  /** The index of the lowest (best normalised) value; every one failing is META_TEST_NO_OBSERVATION. */
  best(values: (number | null)[]): Result<number, UseCaseError>;
}

/** Every validation query of a meta-test choice failed: there is nothing to choose from. */
export const noObservation = (): UseCaseError =>
  new UseCaseError('META_TEST_NO_OBSERVATION', 'meta-test: every validation query failed');

/** Registers the seed's selection splits with the oracle and returns its scoring helpers. */
export async function seedQueries(
  cfg: Pick<MetaTestConfig, 'endpointRule'>,
  deps: MetaTestDeps,
  jobId: string,
): Promise<SeedQueries> {
  const { model, evaluator } = deps;
  const d = model.d;
  const on = (rows: Int32Array, labels: Int32Array): ScoredRows => ({
    labels,
    classes: model.classes,
    rows,
    ...(deps.context ? { context: sliceContext(deps.context, rows) } : {}),
  });
  const valOn = on(deps.valRows, deps.valLabels);
  const testOn = on(deps.testRows, deps.testLabels);
  await deps.oracle.registerSplit('val', valOn);
  const halves = [0, 1].map((h) => {
    const idx = Int32Array.from({ length: deps.valRows.length }, (_, i) => i).filter((i) => i % 2 === h);
    return {
      idx,
      on: on(
        Int32Array.from(idx, (i) => deps.valRows[i] as number),
        Int32Array.from(idx, (i) => deps.valLabels[i] as number),
      ),
    };
  });
  if (cfg.endpointRule === 'confirm') {
    await deps.oracle.registerSplit('val-even', (halves[0] as (typeof halves)[number]).on);
    await deps.oracle.registerSplit('val-odd', (halves[1] as (typeof halves)[number]).on);
  }

  // The in-process evaluator is the oracle's metric: its outputs say whether to embed.
  const embeddings = readsEmbeddings(evaluator);
  const scoreScores = async (outputs: ModelOutputs, split: 'val' | 'test'): Promise<number | null> => {
    const input = evaluationInput(outputs.scores, split === 'val' ? valOn : testOn, outputs.embeddings);
    const res = await evaluateWithRetries(evaluator, input);
    return res.ok ? res.value.value : null;
  };
  const outputs = (phi: Float32Array, rows: Int32Array) =>
    modelOutputs(model, phi, 1, rows, embeddings)[0] as ModelOutputs;
  const predict = (phi: Float32Array, split: 'val' | 'test') =>
    outputs(phi, split === 'val' ? deps.valRows : deps.testRows);
  const score = (phi: Float32Array, split: 'val' | 'test') => scoreScores(predict(phi, split), split);
  const queryScores = async (
    outputSets: ModelOutputs[],
    taskId: number,
    split: SelectionSplit | 'observe' = 'val',
  ): Promise<(number | null)[]> => {
    const results = await deps.oracle.evaluate(
      outputSets.map((o, i) => ({
        jobId,
        taskId,
        step: i,
        split,
        scores: o.scores,
        ...(o.embeddings ? { embeddings: o.embeddings } : {}),
      })),
    );
    return results.map((r) => (r.ok ? r.value.normalised : null));
  };
  const queryVal = async (
    phis: Float32Array[],
    taskId: number,
    split: SelectionSplit = 'val',
  ): Promise<(number | null)[]> => {
    const rowsOf =
      split === 'val' ? deps.valRows : ((split === 'val-even' ? halves[0] : halves[1])?.on.rows as Int32Array);
    const out: (number | null)[] = [];
    // Chunks keep the predictions of a large budget (random_search_total, cma_es) small in memory.
    for (let s = 0; s < phis.length; s += 64) {
      const part = phis.slice(s, s + 64);
      const all = new Float32Array(part.length * d);
      part.forEach((p, i) => all.set(p, i * d));
      out.push(...(await queryScores(modelOutputs(model, all, part.length, rowsOf, embeddings), taskId + s, split)));
    }
    return out;
  };
  const best = (values: (number | null)[]): Result<number, UseCaseError> => {
    let bi = -1;
    values.forEach((v, i) => {
      if (v !== null && (bi < 0 || v < (values[bi] as number))) bi = i;
    });
    return bi < 0 ? err(noObservation()) : ok(bi);
  };
  return { on, outputs, predict, scoreScores, score, queryScores, queryVal, best };
}
