import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Recorder, ValueApiClient, type ValueApiError } from '../../clients/typescript/index.js';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import { instanceCost } from '../../shared/metrics/context-metrics.js';
import { readFitLabels } from '../../shared/use-cases/byom/fit-inputs.js';
import { loadCheckpoint } from '../../shared/storage/value-function-store.js';
import { useTestBackend } from '../helpers/backend.js';
import { cosine, makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const KEY = 'mo_test_clients_fit_0123456789abcdef';
const world = makeWorld(6, 21);
const lines = recordTrajectories(world, { trajectories: 40, steps: 20, K: 4, seed: 2 });
let dir: string;
let store: FsObjectStore;
let server: RunningServer;

beforeAll(async () => {
  await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-clients-'));
  store = new FsObjectStore(dir);
  server = await startValueApiServer({
    store,
    port: 0,
    auth: { mode: 'api-key', hashes: [hashApiKey(KEY)] },
    maxBodyBytes: 1 << 20,
    maxRows: 1024,
    refreshMs: 50,
  });
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('clients: record, upload, fit, wait, then guide', () => {
  it('TypeScript: Recorder.fit through the service, then gradients that go down the bowl', async () => {
    const client = new ValueApiClient({ baseUrl: server.url, apiKey: KEY, timeoutMs: 60_000 });
    const rec = new Recorder();
    for (const l of lines) {
      rec.log(l.trajectory, l.step, l.phi);
      if (l.metric !== undefined) rec.observe(l.trajectory, l.step, l.metric);
    }
    const states: string[] = [];
    const summary = await rec.fit(
      client,
      {
        id: 'ts-fit',
        metric: { name: 'bowl', direction: 'minimize' },
        overrides: { metaTrain: { ensemble: 1 } },
        output: { valueFunctionId: 'ts-bowl' },
      },
      { pollMs: 50, onProgress: (s) => states.push(s.state) },
    );
    expect(summary.state).toBe('done');
    expect(states[states.length - 1]).toBe('done');
    expect(summary.status?.valueFunction).toEqual({ id: 'ts-bowl', version: 1 });
    // A retried upload counts nothing twice.
    const again = await client.uploadObservations('ts-fit', rec.lines()).catch((e: ValueApiError) => e);
    expect(again).toMatchObject({ status: 409, code: 'FIT_JOB_STARTED' });
    const held = recordTrajectories(world, { trajectories: 5, steps: 20, K: 2, seed: 99 });
    const g = await client.gradient(
      'ts-bowl',
      held.map((l) => l.phi),
    );
    const mean =
      g.gradients.reduce((a, row, i) => a + cosine(row, world.metricGradient(held[i]?.phi ?? [])), 0) / held.length;
    expect(mean).toBeGreaterThan(0.5);
    expect(() => {
      const r = new Recorder();
      r.observe('t', 1, 0.2);
      r.lines();
    }).toThrow(/has a metric value but no logged phi/);
  });

  it('both clients: predictions scored by a registered evaluator instead of values observed in the loop', async () => {
    // Of N positive examples the first round(m N) are scored negative: mcr gives the metric back.
    const N = 50;
    const scoresOf = (m: number) => {
      const wrong = Math.min(N, Math.round(m * N));
      return Array.from({ length: N }, (_, i) => (i < wrong ? 0.25 : 0.75));
    };
    const few = recordTrajectories(world, { trajectories: 10, steps: 8, K: 3, seed: 5 });
    const observed = few.filter((l) => l.metric !== undefined).length;
    const labels = Array.from({ length: N }, () => 1);
    const client = new ValueApiClient({ baseUrl: server.url, apiKey: KEY, timeoutMs: 60_000 });
    const rec = new Recorder();
    rec.labels(labels, 2);
    for (const l of few) {
      rec.log(l.trajectory, l.step, l.phi);
      if (l.metric !== undefined) rec.observePredictions(l.trajectory, l.step, scoresOf(l.metric), 'mcr');
    }
    const ts = await rec.fit(
      client,
      {
        id: 'ts-scored',
        metric: { name: 'mcr', direction: 'minimize' },
        overrides: { metaTrain: { ensemble: 1 } },
        output: { valueFunctionId: 'ts-scored' },
      },
      { pollMs: 50 },
    );
    const done = { state: 'done', status: { evaluations: { returned: observed, failed: 0 } } };
    expect(ts).toMatchObject({ ...done, uploads: { predictionLines: observed, predictions: observed } });

    const file = join(dir, 'scored.json');
    const lines = few.map(({ metric, ...l }) => (metric === undefined ? l : { ...l, scores: scoresOf(metric) }));
    await writeFile(file, JSON.stringify({ classes: 2, labels, evaluator: 'mcr', lines }));
    const { stdout } = await run(
      'python3',
      [join(root, 'clients/python/check_fit_predictions.py'), server.url, KEY, file, 'py-scored', 'py-scored'],
      { timeout: 120_000 },
    );
    const py = JSON.parse(stdout) as { first: { accepted: number }; again: { duplicates: number }; summary: unknown };
    expect(py.first.accepted).toBe(few.length);
    expect(py.again.duplicates).toBe(few.length);
    expect(py.summary).toMatchObject({ ...done, uploads: { predictionLines: observed, predictions: observed } });
    // Both fits are of the same values: the service's evaluator scored what each client sent.
    const a = await loadCheckpoint(store, 'ts-scored');
    const b = await loadCheckpoint(store, 'py-scored');
    expect(a.ok && b.ok && a.value.members).toEqual(b.ok ? b.value.members : undefined);
  });

  it("both clients: rows and context uploaded with the labels reach the fit job's evaluator", async () => {
    // instance-cost: every label positive, the first round(m N) scored negative, each missed one
    // costing its amount: the metric depends on the context column, so the fit of the scored
    // lines equals the fit of values computed here only if the evaluator saw these amounts.
    const N = 40;
    const labels = Array.from({ length: N }, () => 1);
    const rows = Array.from({ length: N }, (_, i) => 1000 - 7 * i);
    const amount = Array.from({ length: N }, (_, i) => 0.5 + ((i * 7) % 13) / 4);
    const scoresOf = (m: number) => {
      const wrong = Math.min(N, Math.round(m * N));
      return Array.from({ length: N }, (_, i) => (i < wrong ? 0.25 : 0.75));
    };
    const costOf = (m: number) =>
      instanceCost.evaluate({
        scores: Float32Array.from(scoresOf(m)),
        labels: Int32Array.from(labels),
        classes: 2,
        rows: Int32Array.from(rows),
        context: { amount: Float64Array.from(amount) },
      }) as number;
    const few = recordTrajectories(world, { trajectories: 10, steps: 8, K: 3, seed: 6 });
    const observed = few.filter((l) => l.metric !== undefined).length;
    const job = (id: string) => ({
      id,
      metric: { name: 'instance-cost', direction: 'minimize' as const },
      overrides: { metaTrain: { ensemble: 1 } },
      output: { valueFunctionId: id },
    });
    const client = new ValueApiClient({ baseUrl: server.url, apiKey: KEY, timeoutMs: 60_000 });
    const scored = new Recorder();
    const valued = new Recorder();
    scored.labels(labels, 2, { rows, context: { amount } });
    for (const l of few) {
      scored.log(l.trajectory, l.step, l.phi);
      valued.log(l.trajectory, l.step, l.phi);
      if (l.metric === undefined) continue;
      scored.observePredictions(l.trajectory, l.step, scoresOf(l.metric), 'instance-cost');
      valued.observe(l.trajectory, l.step, costOf(l.metric));
    }
    const ts = await scored.fit(client, job('ts-ctx'), { pollMs: 50 });
    await valued.fit(client, job('ts-ctx-values'), { pollMs: 50 });
    const done = { state: 'done', status: { evaluations: { returned: observed, failed: 0 } } };
    expect(ts).toMatchObject({ ...done, uploads: { labels: { n: N, classes: 2 }, predictionLines: observed } });
    expect(await readFitLabels(store, 'ts-ctx')).toEqual({ classes: 2, labels, rows, context: { amount } });

    const file = join(dir, 'scored-ctx.json');
    const lines = few.map(({ metric, ...l }) => (metric === undefined ? l : { ...l, scores: scoresOf(metric) }));
    await writeFile(
      file,
      JSON.stringify({ classes: 2, labels, rows, context: { amount }, evaluator: 'instance-cost', lines }),
    );
    const { stdout } = await run(
      'python3',
      [join(root, 'clients/python/check_fit_predictions.py'), server.url, KEY, file, 'py-ctx', 'py-ctx'],
      { timeout: 120_000 },
    );
    const py = JSON.parse(stdout) as { summary: unknown; refused: unknown[] };
    expect(py.refused).toEqual([
      expect.objectContaining({ status: 400, code: 'PREDICTIONS_INVALID' }),
      expect.objectContaining({ status: 0, code: 'NOT_FINITE' }),
      { labelsAfter: null },
    ]);
    expect(JSON.stringify(py.refused[0])).toMatch(/every context column must have one value per label/);
    expect(py.summary).toMatchObject({ ...done, uploads: { labels: { n: N, classes: 2 }, predictionLines: observed } });
    expect(await readFitLabels(store, 'py-ctx')).toEqual({ classes: 2, labels, rows, context: { amount } });
    // Three fits of the same values: scored by the service with each client's context, and given.
    const members = async (id: string) => {
      const c = await loadCheckpoint(store, id);
      if (!c.ok) throw c.error;
      return c.value.members;
    };
    const expected = await members('ts-ctx-values');
    expect(await members('ts-ctx')).toEqual(expected);
    expect(await members('py-ctx')).toEqual(expected);
  });

  it('Python (standard library only): Recorder, batched idempotent upload, wait with progress, gradient', async () => {
    const file = join(dir, 'obs.jsonl');
    await writeFile(file, toJsonLines(lines));
    const { stdout } = await run(
      'python3',
      [join(root, 'clients/python/check_fit.py'), server.url, KEY, file, 'py-fit', 'py-bowl'],
      { timeout: 120_000 },
    );
    const seen = JSON.parse(stdout) as {
      first: { accepted: number; duplicates: number; total: number };
      again: { accepted: number; duplicates: number; total: number };
      states: string[];
      summary: { state: string; status: { valueFunction: { id: string; version: number } } };
      phi: number[];
      gradient: { gradients: number[][]; version: number };
      missingPhi: [string, string];
    };
    expect(seen.first).toMatchObject({ accepted: lines.length, duplicates: 0, total: lines.length });
    expect(seen.again).toMatchObject({ accepted: 0, duplicates: lines.length, total: lines.length });
    expect(seen.states[seen.states.length - 1]).toBe('done');
    expect(seen.summary.status.valueFunction).toEqual({ id: 'py-bowl', version: 1 });
    // The answer is the stored checkpoint's gradient.
    const stored = await loadCheckpoint(store, 'py-bowl');
    expect(stored.ok).toBe(true);
    if (!stored.ok) return;
    const expected = new Float32Array(6);
    new CompiledValueFunction(stored.value).valueAndGradient(Float32Array.from(seen.phi), expected);
    expect(Float32Array.from(seen.gradient.gradients[0] as number[])).toEqual(expected);
    expect(seen.missingPhi[0]).toBe('INVALID_INPUT');
  });
});
