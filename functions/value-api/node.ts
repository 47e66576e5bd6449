import { inProcessFitLauncher } from '../../shared/adapters/fit-launcher.worker-thread.js';
import type { ObjectStoreOptions } from '../../shared/adapters/from-url.js';
import { type HttpServerOptions, type RunningServer, startHttpServer } from '../../shared/adapters/http-server.node.js';
import { restartOrphanedFitJobs } from '../../shared/use-cases/byom/fit-job-api.js';
import { localHostCheck } from './auth.js';
import { buildValueApi, type ValueApiSettings } from './service.js';

export type { RunningServer } from '../../shared/adapters/http-server.node.js';

export interface NodeServerOptions
  extends ValueApiSettings,
    Pick<HttpServerOptions, 'requestTimeoutMs' | 'maxConnections' | 'accessLog'> {
  port: number;
  hostname?: string;
  /** Fits run by this server (no jobs queue): their wall-clock budget, and how their worker reopens the store. */
  fits?: {
    budgetMs?: number;
    storeOptions?: ObjectStoreOptions;
    /**
     * At start, run again (in the background) every fit job a stopped server left stalled or
     * queued (restartOrphanedFitJobs); `metricopt serve` sets it. Only for fits run by this server.
     */
    restartOrphaned?: boolean;
  };
}

/**
 * Serves the value API on Node (shared/adapters/http-server.node.ts: request timeout, connection
 * cap, JSON answers to malformed requests), with fit jobs run in this process (in a worker
 * thread) unless a jobs queue is configured; port 0 picks a free port.
 */
export function startValueApiServer(options: NodeServerOptions): Promise<RunningServer> {
  const hostname = options.hostname ?? '127.0.0.1';
  // Auth off: only local and IP Host headers (DNS rebinding); a keyed server takes any name.
  const hostAllowed = options.hostAllowed ?? (options.auth.mode === 'none' ? localHostCheck([hostname]) : undefined);
  // Fit jobs run in this process unless a jobs queue is configured.
  const log = options.log ?? ((entry) => process.stderr.write(`${JSON.stringify(entry)}\n`));
  const fitLauncher =
    options.fitLauncher ??
    inProcessFitLauncher(options.store, log, {
      ...(options.fits?.budgetMs === undefined ? {} : { budgetMs: options.fits.budgetMs }),
      ...(options.fits?.storeOptions === undefined ? {} : { storeOptions: options.fits.storeOptions }),
    });
  const { app } = buildValueApi({ ...options, fitLauncher, ...(hostAllowed ? { hostAllowed } : {}) });
  if (options.fits?.restartOrphaned && options.fitLauncher === undefined && options.jobsQueue === undefined) {
    void restartOrphanedFitJobs(options.store, fitLauncher).then(
      (ids) => ids.length > 0 && log({ level: 'info', msg: 'value-api: fit jobs restarted', jobIds: ids }),
      (e) => log({ level: 'error', msg: 'value-api: restarting stalled fit jobs failed', error: String(e) }),
    );
  }
  return startHttpServer(app.fetch, {
    port: options.port,
    hostname,
    log,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.accessLog === undefined ? {} : { accessLog: options.accessLog }),
  });
}
