import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { buildValueApi, type ValueApiSettings } from './service.js';

export interface NodeServerOptions extends ValueApiSettings {
  port: number;
  hostname?: string;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Serves the value API on Node (@hono/node-server); port 0 picks a free port. */
export function startValueApiServer(options: NodeServerOptions): Promise<RunningServer> {
  const { app } = buildValueApi(options);
  const hostname = options.hostname ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: options.port, hostname }, (info: AddressInfo) => {
      const host = info.address.includes(':') ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host}:${info.port}`,
        port: info.port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((e) => (e ? fail(e) : done()));
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    server.once('error', reject);
  });
}
