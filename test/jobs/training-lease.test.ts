import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadDataset } from '../../shared/adapters/dataset.fs.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { type JobStatus, jobStatusSchema } from '../../shared/schemas/job.js';
import { jobStatus, readJobStatus, writeJobStatus } from '../../shared/storage/job-documents.js';
import { jobKeys } from '../../shared/storage/layout.js';
import { parseJobSpec } from '../../shared/use-cases/jobs/job-spec.js';
import { trainValueFunction } from '../../shared/use-cases/jobs/train-value-function.js';
import { useTestBackend } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import { smallA9a, tinyJob } from './fixtures.js';

/**
 * Issue 23, item 4, for training jobs: a running job holds a lease in its status document from
 * its start (renewed while its runner lives, dropped when it ends); a job whose lease expired is
 * shown as `stalled` by `jobs status`; `train --store DIR` reads DIR as serve, fit and jobs
 * status do (DIR/store when DIR is a `metricopt demo --out` folder).
 */
let dir: string;
let file: string;
let backend: string;

beforeAll(async () => {
  backend = await useTestBackend();
  ({ dir, file } = await smallA9a(400));
});
afterEach(() => vi.restoreAllMocks());

/** A store that records every status document written to it. */
function recording(store: ObjectStore, id: string): { store: ObjectStore; written: JobStatus[] } {
  const written: JobStatus[] = [];
  const key = jobKeys(id).status;
  const put = store.put.bind(store);
  const wrapped = Object.create(store) as ObjectStore;
  wrapped.put = async (k, body) => {
    if (k === key) written.push(jobStatusSchema.parse(JSON.parse(String(body))));
    await put(k, body);
  };
  return { store: wrapped, written };
}

describe('a training job', () => {
  it('holds a lease in its status document from its start and while running, and none once done', async () => {
    const parsed = parseJobSpec(tinyJob(file, 'leased'));
    if (!parsed.ok) throw parsed.error;
    const dataset = await loadDataset(file, { features: 123 });
    const evaluator = builtinEvaluator('mcr');
    if (!dataset.ok || !evaluator.ok) throw new Error('fixture');
    const { store, written } = recording(new FsObjectStore(join(dir, 'leased')), 'leased');
    const started = Date.now();
    const r = await trainValueFunction(parsed.value, {
      store,
      dataset: dataset.value,
      evaluator: evaluator.value,
      oracle: new InProcessMetricOracle(evaluator.value),
      progress: silentProgress,
      backend,
      leaseMs: 30_000,
    });
    if (!r.ok) throw r.error;
    // The first document is written before pre-training (a new job is never JOB_NOT_FOUND while it runs).
    expect(written[0]).toMatchObject({ jobId: 'leased', state: 'running', stage: 'pretrain' });
    const running = written.filter((s) => s.state === 'running');
    expect(running.length).toBeGreaterThan(1);
    for (const s of running) {
      const lease = Date.parse(s.leaseExpiresAt ?? '');
      expect(lease - Date.parse(s.updatedAt), s.stage).toBeGreaterThan(29_000);
      expect(lease).toBeGreaterThan(started);
    }
    const last = written.at(-1);
    expect(last).toMatchObject({ state: 'done' });
    expect(last?.leaseExpiresAt).toBeUndefined();
  });
});

describe('metricopt jobs status', () => {
  const at = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
  const running = (id: string, leaseExpiresAt: string): JobStatus => ({
    ...jobStatus({ jobId: id, backend: 'wasm', startedAt: at(600_000) }, { stage: 'trajectories' }),
    leaseExpiresAt,
  });

  it('shows a running job whose lease expired as stalled and says how to resume it; a live lease as running', async () => {
    const store = new FsObjectStore(join(dir, 'status-store'));
    await writeJobStatus(store, running('killed', at(120_000)));
    await writeJobStatus(store, running('alive', at(-60_000)));
    const root = join(dir, 'status-store');
    const killed = await runCli(['jobs', 'status', 'killed', '--store', root]);
    expect(killed.code).toBe(0);
    expect(killed.stdout).toMatch(/^job killed: stalled \(stage trajectories, backend wasm\)/);
    expect(killed.stdout).toContain('metricopt train --job-id killed');
    const json = await runCli(['jobs', 'status', 'killed', '--store', root, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ jobId: 'killed', state: 'stalled' });
    // --watch stops on a stalled job instead of polling it for ever.
    const watch = await runCli(['jobs', 'status', 'killed', '--store', root, '--watch', '--interval', '50']);
    expect(watch.code).toBe(0);
    const alive = await runCli(['jobs', 'status', 'alive', '--store', root, '--json']);
    expect(JSON.parse(alive.stdout)).toMatchObject({ jobId: 'alive', state: 'running' });
  });
});

describe('metricopt train --store', () => {
  it('uses DIR/store when DIR is a demo output folder, as serve, fit and jobs status do', async () => {
    const out = join(dir, 'demo-out');
    await mkdir(join(out, 'store', 'value-functions'), { recursive: true });
    const job = join(dir, 'store-job.json');
    await writeFile(job, JSON.stringify(tinyJob(file, 'in-demo-out')));
    const r = await runCli(['train', '--job', job, '--store', out, '--backend', 'wasm']);
    expect(r.stderr).not.toContain('error [');
    expect(r.code).toBe(0);
    const inner = await readJobStatus(new FsObjectStore(join(out, 'store')), 'in-demo-out');
    expect(inner.ok && inner.value.state).toBe('done');
    expect(await new FsObjectStore(out).list('jobs/')).toEqual([]);
    const status = await runCli(['jobs', 'status', 'in-demo-out', '--store', out]);
    expect(status.stdout).toMatch(/^job in-demo-out: done/);
  });
});
