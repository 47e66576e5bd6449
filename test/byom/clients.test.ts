import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Recorder, ValueApiClient, type ValueApiError } from '../../clients/typescript/index.js';
import { hashApiKey } from '../../functions/value-api/auth.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { CompiledValueFunction } from '../../shared/method/value-function-f32.js';
import { loadCheckpoint } from '../../shared/use-cases/value-function-store.js';
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
