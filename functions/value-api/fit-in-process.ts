import { selectBackend } from '../../shared/adapters/compute-backend.js';
import { inProcessOracles } from '../../shared/adapters/metric-oracle.in-process.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import type { FitLauncher } from '../../shared/use-cases/fit-job-api.js';
import { runFitJob } from '../../shared/use-cases/fit-observations.js';

/**
 * Runs started fit jobs in this process, one after another, in the background: the embedded
 * default of `metricopt serve` (node.ts) when no jobs queue is configured. Training is
 * synchronous tfjs work, so while a fit runs this process answers nothing else; a deployment
 * that serves traffic should configure METRICOPT_JOBS_QUEUE instead. Lines scored from
 * predictions are scored by the built-in evaluators here. Kept out of the Lambda
 * bundle (it loads tfjs).
 */
export function inProcessFitLauncher(
  store: ObjectStore,
  log: (entry: Record<string, unknown>) => void,
): FitLauncher & { idle(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  let backend: Promise<string> | undefined;
  return {
    via: 'in-process',
    launch(spec) {
      backend ??= selectBackend((process.env.METRICOPT_BACKEND as 'wasm' | undefined) ?? 'auto').then((b) => b.name);
      const ready = backend;
      running = running.then(async () => {
        // Answer the start request first.
        await new Promise((r) => setTimeout(r, 0));
        try {
          const r = await runFitJob(spec, {
            store,
            progress: silentProgress,
            backend: await ready,
            oracleFor: inProcessOracles(builtinEvaluator),
          });
          if (!r.ok) log({ level: 'warn', msg: 'value-api: fit job failed', jobId: spec.id, code: r.error.code });
        } catch (e) {
          log({ level: 'error', msg: 'value-api: fit job failed', jobId: spec.id, error: String(e) });
        }
      });
      return Promise.resolve();
    },
    idle: () => running,
  };
}
