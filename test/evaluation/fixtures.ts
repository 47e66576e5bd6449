import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import type { Evaluator } from '../../shared/ports/evaluator.port.js';
import type { EvaluatorRegistry } from '../../shared/ports/evaluator.port.js';
import { createEvaluatorRegistry } from '../../shared/metrics/evaluator-registry.js';
import type { MetricQuery } from '../../shared/ports/metric-oracle.port.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { labelsKey, predictionsKey } from '../../shared/storage/layout.js';
import { EVALUATION_MESSAGE_VERSION, type EvaluationMessage } from '../../shared/schemas/evaluation.js';
import type { EvaluateRequestDeps } from '../../shared/use-cases/evaluation/evaluate-request.js';
import { ok } from '../../shared/util/result.js';
import { Rng } from '../../shared/util/random.js';

export async function tempDir(prefix = 'metricopt-eval-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Test evaluators registered as "modules" under their own names, plus a call counter each. */
export function countingEvaluator(
  name: string,
  fn: (scores: Float32Array, labels: Int32Array) => number | Promise<number>,
  direction: 'minimize' | 'maximize' = 'minimize',
): Evaluator & { calls: number } {
  const e = {
    name,
    direction,
    version: '1.2.3',
    calls: 0,
    evaluate(input: { scores: Float32Array; labels: Int32Array }) {
      e.calls++;
      return fn(input.scores, input.labels);
    },
  };
  return e;
}

export async function registryOf(...evaluators: Evaluator[]): Promise<EvaluatorRegistry> {
  const byPath = new Map(evaluators.map((e) => [`mem:${e.name}`, e]));
  const r = await createEvaluatorRegistry(
    evaluators.map((e) => ({ kind: 'module' as const, path: `mem:${e.name}` })),
    {
      loadModule: async (path) => ok(byPath.get(path) as Evaluator),
      webhook: () => {
        throw new Error('registryOf: no webhooks');
      },
    },
  );
  if (!r.ok) throw r.error;
  return r.value;
}

export async function workbench(evaluators: Evaluator[], overrides: Partial<EvaluateRequestDeps> = {}) {
  const dir = await tempDir();
  const store = new FsObjectStore(join(dir, 'store'));
  const queue = new LocalQueue(join(dir, 'queue'), { visibilityTimeoutMs: 2000, maxReceiveCount: 3 });
  const deps: EvaluateRequestDeps = {
    store,
    registry: await registryOf(...evaluators),
    workerId: 'test-worker',
    maxReceiveCount: 3,
    evaluatorTimeoutMs: 1000,
    retryDelayMs: 5,
    ...overrides,
  };
  return { dir, store, queue, deps };
}

export function randomQueries(jobId: string, n: number, count: number, seed: number): MetricQuery[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, i) => ({
    jobId,
    taskId: Math.floor(i / 5),
    step: i % 5,
    split: 'val',
    scores: Float32Array.from({ length: n }, () => rng.next()),
  }));
}

export function randomLabels(n: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => (rng.next() < 0.3 ? 1 : 0));
}

/** Writes inputs to the store and returns a message body, as the queued oracle would. */
export async function messageFor(
  store: ObjectStore,
  fields: { jobId: string; key: string; evaluator: string; scores: Float32Array; labels: Int32Array; taskId?: number },
): Promise<EvaluationMessage> {
  const lKey = labelsKey(fields.jobId, 'val', 'v1');
  await store.put(lKey, new Uint8Array(fields.labels.buffer));
  const pKey = predictionsKey(fields.jobId, fields.key);
  await store.put(pKey, new Uint8Array(fields.scores.buffer));
  return {
    version: EVALUATION_MESSAGE_VERSION,
    jobId: fields.jobId,
    taskId: fields.taskId ?? 0,
    step: 0,
    split: 'val',
    evaluator: fields.evaluator,
    idempotencyKey: fields.key,
    predictions: { key: pKey },
    labels: { key: lKey },
    classes: 2,
    sentAt: new Date().toISOString(),
  };
}

export const errorRate = (scores: Float32Array, labels: Int32Array): number => {
  let wrong = 0;
  for (let i = 0; i < labels.length; i++) if (((scores[i] as number) >= 0.5 ? 1 : 0) !== labels[i]) wrong++;
  return wrong / labels.length;
};

/** `n` rows of `dim` normal draws from `rng`, each scaled to unit length (row-major). */
export function unitRows(rng: Rng, n: number, dim: number): Float32Array {
  const v = rng.normals(n * dim);
  for (let i = 0; i < n; i++) {
    const row = v.subarray(i * dim, (i + 1) * dim);
    const norm = Math.hypot(...row);
    for (let j = 0; j < dim; j++) row[j] = (row[j] as number) / norm;
  }
  return v;
}
