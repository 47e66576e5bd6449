import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from './compute-backend.js';
import { type ObjectStoreOptions, openObjectStore } from './from-url.js';
import { inProcessOracles } from './metric-oracle.in-process.js';
import { builtinEvaluator } from '../metrics/registry.js';
import { silentProgress } from '../ports/progress.port.js';
import { loadFitJobSpec } from '../use-cases/byom/fit-job-spec.js';
import { runFitJob } from '../use-cases/byom/fit-observations.js';

/**
 * The worker thread that runs one fit job for `metricopt serve` (fit-launcher.worker-thread.ts): it opens
 * the store from its location, runs the job to its end and posts how it ended. The fit's tfjs
 * work runs here, so the serving thread keeps answering; the launcher terminates this thread
 * on cancel or when the wall-clock budget is spent.
 */
export interface FitWorkerData {
  location: string;
  storeOptions: ObjectStoreOptions;
  jobId: string;
  leaseMs?: number | undefined;
}

/** What the worker posts when the job ends. */
export type FitWorkerResult = { ok: true; kind: string } | { ok: false; code: string; message: string };

async function main(data: FitWorkerData): Promise<FitWorkerResult> {
  const store = await openObjectStore(data.location, data.storeOptions);
  const spec = await loadFitJobSpec(store, data.jobId);
  if (!spec.ok) return { ok: false, code: spec.error.code, message: spec.error.message };
  const backend = await selectBackend((process.env.METRICOPT_BACKEND as 'wasm' | undefined) ?? 'auto');
  const r = await runFitJob(spec.value, {
    store,
    progress: silentProgress,
    backend: backend.name,
    oracleFor: inProcessOracles(builtinEvaluator),
    leaseMs: data.leaseMs,
  });
  return r.ok ? { ok: true, kind: r.value.kind } : { ok: false, code: r.error.code, message: r.error.message };
}

if (parentPort !== null) {
  const port = parentPort;
  main(workerData as FitWorkerData).then(
    (result) => port.postMessage(result),
    (e: unknown) =>
      port.postMessage({
        ok: false,
        code: (e as { code?: unknown })?.code === undefined ? 'INTERNAL' : String((e as { code: unknown }).code),
        message: e instanceof Error ? e.message : String(e),
      } satisfies FitWorkerResult),
  );
}
