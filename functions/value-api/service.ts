import type { OpenAPIHono } from '@hono/zod-openapi';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { Queue } from '../../shared/ports/queue.port.js';
import type { FitLauncher } from '../../shared/ports/fit.port.js';
import { GuidanceService, ValueFunctionCatalog } from '../../shared/use-cases/serving/serve-guidance.js';
import { type Authenticate, apiKeyAuth, iamAuth, noAuth } from './auth.js';
import { createValueApi } from './app.js';
import { queueFitLauncher, unavailableFitLauncher } from './fit-routes.js';
import type { ValueApiEnv } from './routes.js';

export interface ValueApiSettings {
  store: ObjectStore;
  auth: { mode: 'api-key'; hashes: readonly string[] } | { mode: 'iam' } | { mode: 'none' };
  maxBodyBytes: number;
  maxRows: number;
  refreshMs: number;
  log?: (entry: Record<string, unknown>) => void;
  /** Which Host headers /v1 accepts (all when omitted); the Node server sets it when auth is off. */
  hostAllowed?: (host: string | undefined) => boolean;
  /** Fit jobs are started with a message on this queue (METRICOPT_JOBS_QUEUE); absent, they run in this process. */
  jobsQueue?: Queue;
  /** Without a jobs queue: who runs a started fit (node.ts: this process; Lambda: nobody, start is refused). */
  fitLauncher?: FitLauncher;
}

/** Wires a store, the use-cases and the auth mode into the app (once per process). */
export function buildValueApi(settings: ValueApiSettings): {
  app: OpenAPIHono<ValueApiEnv>;
  service: GuidanceService;
  fitLauncher: FitLauncher;
} {
  const log = settings.log ?? ((entry) => process.stderr.write(`${JSON.stringify(entry)}\n`));
  const catalog = new ValueFunctionCatalog(settings.store, {
    refreshIntervalMs: settings.refreshMs,
    // Once per bad version: unpinned requests are served the newest good one meanwhile.
    onInvalidCheckpoint: (invalid) =>
      log({ level: 'warn', msg: 'value-api: checkpoint version skipped, it cannot be served', ...invalid }),
  });
  const service = new GuidanceService(catalog, { maxRows: settings.maxRows });
  const authenticate: Authenticate =
    settings.auth.mode === 'api-key'
      ? apiKeyAuth(settings.auth.hashes)
      : settings.auth.mode === 'iam'
        ? iamAuth
        : noAuth;
  const fitLauncher = settings.jobsQueue
    ? queueFitLauncher(settings.jobsQueue)
    : (settings.fitLauncher ?? unavailableFitLauncher);
  const app = createValueApi({
    service,
    authenticate,
    maxBodyBytes: settings.maxBodyBytes,
    log,
    authMode: settings.auth.mode,
    fit: { store: settings.store, launcher: fitLauncher },
    jobStore: settings.store,
    ...(settings.hostAllowed ? { hostAllowed: settings.hostAllowed } : {}),
  });
  return { app, service, fitLauncher };
}
