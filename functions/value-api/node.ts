import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { ObjectStoreOptions } from '../../shared/adapters/from-url.js';
import { localHostCheck } from './auth.js';
import { errorBody } from './errors.js';
import { restartOrphanedFitJobs } from '../../shared/use-cases/byom/fit-job-api.js';
import { inProcessFitLauncher } from '../../shared/adapters/fit-launcher.worker-thread.js';
import { buildValueApi, type ValueApiSettings } from './service.js';

export interface NodeServerOptions extends ValueApiSettings {
  port: number;
  hostname?: string;
  /**
   * Longest time a request may take to arrive, headers and body (default 30 s; Node's own is
   * 300 s): a slow upload holds up to --max-body-bytes for this long. Past it: 408.
   */
  requestTimeoutMs?: number;
  /** Most open connections; further ones are closed at once (default 1024). */
  maxConnections?: number;
  /** One log line per answered request: method, path (no query), status, milliseconds (default off; serve turns it on). */
  accessLog?: boolean;
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
 * The answer to bytes that are not an HTTP request (or a request too slow or with too large
 * headers), written by this server instead of Node's empty 400 so that every error is JSON.
 */
function clientErrorResponse(code: string | undefined): string {
  const [status, reason, errorCode, message] =
    code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', 'request headers are too large']
      : code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request did not arrive in time']
        : [400, 'Bad Request', 'MALFORMED_REQUEST', 'the request is not valid HTTP/1.1'];
  const body = errorBody(errorCode, message);
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves the value API on Node: the Hono app through @hono/node-server's request listener, in a
 * Node server with a request timeout, a connection cap and JSON answers to malformed requests;
 * port 0 picks a free port.
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
  const handle = getRequestListener(app.fetch, { hostname });
  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const listener: RequestListener = options.accessLog
    ? (req, res) => {
        const started = performance.now();
        res.once('finish', () =>
          log({
            level: 'info',
            msg: 'access',
            method: req.method,
            path: (req.url ?? '').split('?')[0]?.slice(0, 200),
            status: res.statusCode,
            ms: Math.round((performance.now() - started) * 10) / 10,
          }),
        );
        handle(req, res);
      }
    : handle;
  const server = createServer(
    // Node checks the request timeout every connectionsCheckingInterval (default 30 s).
    { requestTimeout, connectionsCheckingInterval: Math.max(10, Math.min(1000, requestTimeout / 4)) },
    listener,
  );
  server.maxConnections = options.maxConnections ?? 1024;
  server.on('clientError', (e: NodeJS.ErrnoException, socket) => {
    if (e.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(clientErrorResponse(e.code));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, hostname, () => {
      const info = server.address() as AddressInfo;
      const host = info.address.includes(':') ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host}:${info.port}`,
        port: info.port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((e) => (e ? fail(e) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
