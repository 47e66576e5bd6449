import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { evaluateChecked } from '../../shared/metrics/checked-evaluator.js';
import type { Evaluator } from '../../shared/ports/evaluator.port.js';
import { tempDir } from './fixtures.js';

async function moduleFile(name: string, source: string): Promise<string> {
  const path = join(await tempDir(), name);
  await writeFile(path, source);
  return path;
}

const input = { scores: Float32Array.from([0.9, 0.2, 0.7]), labels: Int32Array.from([1, 0, 0]), classes: 2 };

async function load(path: string): Promise<Evaluator> {
  const loaded = await loadEvaluatorModuleInWorker(path);
  if (!loaded.ok) throw loaded.error;
  return loaded.value;
}

describe('loadEvaluatorModuleInWorker', () => {
  it('answers what the module computes, with its name, direction and version', async () => {
    const path = await moduleFile(
      'wrong-rate.mjs',
      `export default { name: 'wrong-rate', direction: 'minimize', version: '3',
        evaluate: ({ scores, labels }) => scores.filter((s, i) => (s >= 0.5 ? 1 : 0) !== labels[i]).length / labels.length };`,
    );
    const evaluator = await load(path);
    expect([evaluator.name, evaluator.direction, evaluator.version]).toEqual(['wrong-rate', 'minimize', '3']);
    const r = await evaluateChecked(evaluator, input, 10_000);
    expect(r.ok && r.value.value).toBeCloseTo(1 / 3);
  });

  it('ends an evaluator stuck in a synchronous loop at its deadline, and serves the next call', async () => {
    const path = await moduleFile(
      'stuck.mjs',
      `export default { name: 'stuck', direction: 'minimize',
        evaluate: ({ scores }) => { if (scores[0] > 0.5) for (;;) {} return 0.25; } };`,
    );
    const evaluator = await load(path);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const stuck = await evaluateChecked(evaluator, input, 300);
    clearInterval(timer);
    expect(!stuck.ok && stuck.error.code).toBe('EVALUATOR_TIMEOUT');
    // This thread kept running meanwhile (in-process, the loop would have blocked it for good).
    // How long the end takes is measured in bench/timing-claims.mjs, not asserted here.
    expect(ticks).toBeGreaterThan(0);
    const next = await evaluateChecked(evaluator, { ...input, scores: Float32Array.from([0.1, 0.2, 0.7]) }, 10_000);
    expect(next.ok && next.value.value).toBe(0.25);
  });

  it('reports a throw in the worker as EVALUATOR_FAILED and a bad module as EVALUATOR_MODULE_INVALID', async () => {
    const throws = await load(
      await moduleFile(
        'throws.mjs',
        `export default { name: 'throws', direction: 'maximize', evaluate: () => { throw new Error('no labels for you'); } };`,
      ),
    );
    const r = await evaluateChecked(throws, input, 10_000);
    expect(!r.ok && [r.error.code, r.error.message]).toEqual([
      'EVALUATOR_FAILED',
      "evaluator 'throws' threw: no labels for you",
    ]);
    const bad = await loadEvaluatorModuleInWorker(await moduleFile('bad.mjs', 'export default { name: 1 };'));
    expect(!bad.ok && bad.error.code).toBe('EVALUATOR_MODULE_INVALID');
  });
});
