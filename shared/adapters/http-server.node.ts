import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';

/** How a fetch-style app (Hono's `app.fetch`) is served on Node. */
export interface HttpServerOptions {
  port: number;
  hostname: string;
  /**
   * Longest time a request may take to arrive, headers and body (default 30 s; Node's own is
   * 300 s): a slow upload holds up to the body limit for this long. Past it: 408.
   */
  requestTimeoutMs?: number;
  /** Most open connections; further ones are closed at once (default 1024). */
  maxConnections?: number;
  /** One log line per answered request: method, path (no query), status, milliseconds (default off). */
  accessLog?: boolean;
  log: (entry: Record<string, unknown>) => void;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  port: number;
  close(): Promise<void>;
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
  const body = JSON.stringify({ error: { code: errorCode, message } });
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/**
 * Serves a fetch-style app on Node through @hono/node-server's request listener, in a Node server
 * with a request timeout, a connection cap and JSON answers to malformed requests; port 0 picks
 * a free port.
 */
export function startHttpServer(
  fetch: (request: Request, env?: unknown) => Response | Promise<Response>,
  options: HttpServerOptions,
): Promise<RunningServer> {
  const { hostname, log } = options;
  const handle = getRequestListener(fetch, { hostname });
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
