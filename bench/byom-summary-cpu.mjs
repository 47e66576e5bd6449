#!/usr/bin/env node
// CPU time of one GET /v1/fit-jobs/{id} summary (fitJobSummary, in process, folder store) for a
// job of 10,000 observation lines of d = 16, polled with nothing uploaded since (as while its fit
// runs): median and p90 of 200 calls after 20 warm-up calls, from process.cpuUsage.
// Usage: npm run build && nice -n 10 node bench/byom-summary-cpu.mjs [ROOT]  (ROOT: a checkout with dist/, default this one)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const root = process.argv[2] ?? new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const { FsObjectStore } = await import(`${root}/dist/shared/adapters/object-store.fs.js`);
const { fitJobSummary, uploadObservations } = await import(`${root}/dist/shared/use-cases/byom/fit-job-api.js`);
const { createFitJob } = await import(`${root}/dist/shared/use-cases/byom/fit-job-spec.js`);
const { fitJobSpecSchema } = await import(`${root}/dist/shared/schemas/job.js`);
const dir = await mkdtemp(join(tmpdir(), 'mo-sumcpu-'));
const store = new FsObjectStore(dir);
const spec = fitJobSpecSchema.parse({
  format: 'metricopt.fit-job',
  schemaVersion: 1,
  id: 'j',
  metric: { name: 'bowl', direction: 'minimize' },
  output: { valueFunctionId: 'v' },
});
await createFitJob(store, spec);
const batch = [];
for (let i = 0; i < 10000; i++)
  batch.push({
    trajectory: `t${Math.floor(i / 50)}`,
    step: i % 50,
    phi: Float32Array.from({ length: 16 }, () => Math.random()),
    metric: 1,
  });
await uploadObservations(store, 'j', batch, 'up');
for (let i = 0; i < 20; i++) await fitJobSummary(store, 'j');
const cpu = [];
for (let i = 0; i < 200; i++) {
  const c = process.cpuUsage();
  await fitJobSummary(store, 'j');
  const d = process.cpuUsage(c);
  cpu.push((d.user + d.system) / 1000);
}
cpu.sort((a, b) => a - b);
console.log(JSON.stringify({ root, cpuMsMedian: cpu[100], cpuMsP90: cpu[180] }));
await rm(dir, { recursive: true, force: true });
