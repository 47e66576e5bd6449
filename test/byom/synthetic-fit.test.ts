import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildValueApi } from '../../functions/value-api/service.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { spearman } from '../../shared/method/stats.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { runCli } from '../helpers/cli.js';
import { cosine, makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

/**
 * Issue 12's acceptance test: a world whose metric is known (a quadratic bowl around a point the
 * loss does not lead to), observed at 5 of 31 steps along noisy loss-driven trajectories. After
 * `metricopt fit` the value function served by the API must rank held-out points by the true
 * metric (Spearman >= 0.8) and its gradient must point down the true bowl (mean cosine >= 0.5).
 */
const world = makeWorld(8, 11);
let dir: string;
let measured: { spearman: number; cosine: number; served: number; lossCosine: number; lossSpearman: number };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-'));
  const file = join(dir, 'observations.jsonl');
  await writeFile(file, toJsonLines(recordTrajectories(world, { trajectories: 150, steps: 30, K: 5, seed: 5 })));
  const out = await runCli([
    'fit',
    '--observations',
    file,
    '--id',
    'bowl',
    '--direction',
    'minimize',
    '--metric-name',
    'bowl',
    '--store',
    dir,
    '--job',
    'bowl-fit',
  ]);
  if (out.code !== 0) throw new Error(`fit failed: ${out.stderr}`);

  const { app } = buildValueApi({
    store: new FsObjectStore(dir),
    auth: { mode: 'none' },
    maxBodyBytes: 1 << 22,
    maxRows: 4096,
    refreshMs: 0,
  });
  // Held-out points: new trajectories of the same process, every step.
  const held = recordTrajectories(world, { trajectories: 20, steps: 30, K: 2, seed: 77, prefix: 'held' });
  const res = await app.request('/v1/value-functions/bowl/gradient', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ phi: held.map((l) => l.phi) }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { version: number; values: number[]; gradients: number[][] };
  const truth = held.map((l) => world.metric(l.phi));
  const cosines = held.map((l, i) => cosine(body.gradients[i] as number[], world.metricGradient(l.phi)));
  // The control: the surrogate loss itself, as a value function, would point elsewhere.
  const lossGradient = (phi: number[]) => phi.map((v, j) => 2 * (v - (world.a[j] as number)));
  const lossCosines = held.map((l) => cosine(lossGradient(l.phi), world.metricGradient(l.phi)));
  measured = {
    lossCosine: lossCosines.reduce((a, b) => a + b, 0) / lossCosines.length,
    lossSpearman: spearman(
      held.map((l) => l.phi.reduce((s, v, j) => s + (v - (world.a[j] as number)) ** 2, 0)),
      truth,
    ),
    spearman: spearman(body.values, truth),
    cosine: cosines.reduce((a, b) => a + b, 0) / cosines.length,
    served: body.version,
  };
  process.stderr.write(
    `synthetic world: value function Spearman ${measured.spearman.toFixed(4)}, mean cosine ${measured.cosine.toFixed(4)}; the loss as a predictor: Spearman ${measured.lossSpearman.toFixed(4)}, cosine ${measured.lossCosine.toFixed(4)}\n`,
  );
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('fit on a synthetic world (bowl away from the loss optimum)', () => {
  it('the served value function ranks held-out points by the true metric (Spearman >= 0.8)', () => {
    expect(measured.served).toBe(1);
    expect(measured.spearman).toBeGreaterThanOrEqual(0.8);
  });

  it('its gradient points toward the true optimum (mean cosine with the true gradient >= 0.5)', () => {
    expect(measured.cosine).toBeGreaterThanOrEqual(0.5);
  });

  it('does better than following the loss, which does not lead to the optimum', () => {
    expect(measured.cosine).toBeGreaterThan(measured.lossCosine + 0.1);
    expect(measured.spearman).toBeGreaterThan(measured.lossSpearman);
  });

  it('the job status is done, with the held-out health figures and the checkpoint', async () => {
    const status = await readJobStatus(new FsObjectStore(dir), 'bowl-fit');
    expect(status.ok).toBe(true);
    if (!status.ok) return;
    expect(status.value).toMatchObject({
      state: 'done',
      stage: 'done',
      tasks: { done: 150, total: 150 },
      evaluations: { total: 750, failed: 0 },
      valueFunction: { id: 'bowl', version: 1 },
    });
    expect(status.value.heldOut?.spearman).toBeGreaterThan(0.5);
  });
});
