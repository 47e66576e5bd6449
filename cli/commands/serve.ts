import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { locationKind, openQueue, openStoreLocation } from '../../shared/adapters/from-url.js';
import { shutdownSignal } from '../../shared/adapters/shutdown-signal.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import {
  parseApiKeyEntries,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ROWS,
  DEFAULT_REFRESH_MS,
} from '../../shared/schemas/value-api-config.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';
import { CliError } from '../errors.js';
import { storeOptionsFromEnv } from '../locations.js';
import { cliEnv } from '../env.js';

export interface ServeOptions {
  port: string;
  host: string;
  store?: string;
  apiKeyHash: string[];
  hashKey?: string;
  maxRows: string;
  maxBodyBytes: string;
  refreshMs: string;
  /** --no-fast-lane: accepted and ignored (the Node fast lane was removed; every request goes through Hono). */
  fastLane?: boolean;
  /** --create-store: serve a store folder that does not exist yet (it is created by the first write). */
  createStore?: boolean;
  /** false with --no-access-log: no log line per request on stderr. */
  accessLog?: boolean;
  /** --fit-budget-s: wall-clock budget of one fit run by this server. */
  fitBudgetS?: string;
}

function positiveInt(flag: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new CliError('USAGE', `${flag} must be a positive integer, got '${raw}'`);
  return n;
}

/** `metricopt serve`: the value-function API on Node, over a local store or S3. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve value-function predictions, gradients and Guided-ES directions over HTTP (docs/value-api.md).')
    .option('--port <n>', 'port (0 picks a free one)', '8787')
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--store <dir|s3://bucket/prefix>', 'object store: a `metricopt demo --out` folder, a store folder, or S3')
    .option(
      '--api-key-hash <sha256hex>',
      'accept the API key with this SHA-256 hash, HASH:read or HASH:write to limit it to one scope (repeatable; default: $METRICOPT_API_KEY_HASHES; none = auth off)',
      (v: string, acc: string[]) => [...acc, ...v.split(',').filter(Boolean)],
      [] as string[],
    )
    .option('--hash-key <key>', 'print the SHA-256 hash to configure for an API key, and exit')
    .option('--max-rows <n>', 'most rows in one batch', String(DEFAULT_MAX_ROWS))
    .option('--max-body-bytes <n>', 'largest request body', String(DEFAULT_MAX_BODY_BYTES))
    .option('--refresh-ms <n>', 'how often the store is listed for new versions', String(DEFAULT_REFRESH_MS))
    .option('--create-store', 'serve a store folder that does not exist yet (refused otherwise)')
    .option('--no-access-log', 'no JSON log line per request on stderr')
    .option(
      '--fit-budget-s <s>',
      'wall-clock budget of one fit run by this server (POST /v1/fit-jobs/{id}/start)',
      '1800',
    )
    .option(
      '--no-fast-lane',
      'no effect, kept for old scripts (the Node fast lane was removed: every request goes through Hono)',
    )
    .action(async (opts: ServeOptions) => {
      await serve(opts, (out) => process.stdout.write(out), untilSignal);
    });
}

function untilSignal(): Promise<void> {
  const { signal } = shutdownSignal();
  return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** The serve command: starts the server, reports where, and stops when `until` resolves. */
export async function serve(
  opts: ServeOptions,
  write: (text: string) => void,
  until: (server: RunningServer) => Promise<void>,
): Promise<void> {
  if (opts.hashKey !== undefined) {
    write(`${hashApiKey(opts.hashKey)}\n`);
    return;
  }
  if (!opts.store) throw new CliError('USAGE', 'serve: --store is required (a folder or s3://bucket/prefix)');
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CliError('USAGE', `--port must be an integer in 0..65535, got '${opts.port}'`);
  }
  const env = cliEnv();
  const { entries: normalised, invalid: bad } = parseApiKeyEntries(
    opts.apiKeyHash.length ? opts.apiKeyHash : env.METRICOPT_API_KEY_HASHES,
  );
  if (bad !== undefined) {
    throw new CliError(
      'USAGE',
      `--api-key-hash must be a SHA-256 hex digest (64 hex characters), optionally with :read or :write, got '${bad}'`,
    );
  }
  if (locationKind(opts.store) === 'folder' && !opts.createStore) {
    const folder = opts.store.startsWith('file://') ? fileURLToPath(opts.store) : opts.store;
    if (!existsSync(folder)) {
      throw new CliError(
        'STORE_NOT_FOUND',
        `serve: store folder '${opts.store}' does not exist (a typo? pass --create-store to start with an empty one)`,
      );
    }
  }
  const store = await openStoreLocation(opts.store, storeOptionsFromEnv());
  // Temporary files of a writer killed mid-write (nothing reads them); no writer of ours runs yet.
  if (store instanceof FsObjectStore) await store.removeTemporaryFiles();
  const limits = {
    maxRows: positiveInt('--max-rows', opts.maxRows),
    maxBodyBytes: positiveInt('--max-body-bytes', opts.maxBodyBytes),
    refreshMs: positiveInt('--refresh-ms', opts.refreshMs),
  };
  const ids = await listCheckpointVersions(store);
  let server: RunningServer;
  try {
    server = await startValueApiServer({
      store,
      port,
      hostname: opts.host,
      auth: normalised.length ? { mode: 'api-key', hashes: normalised } : { mode: 'none' },
      accessLog: opts.accessLog !== false,
      fits: {
        budgetMs: positiveInt('--fit-budget-s', opts.fitBudgetS ?? '1800') * 1000,
        storeOptions: storeOptionsFromEnv(),
        // Fit jobs a stopped server left stalled or queued run again, without a start call.
        restartOrphaned: true,
      },
      ...limits,
      // Fit jobs (POST /v1/fit-jobs/{id}/start) go to this queue; unset, they run in this process.
      ...(env.METRICOPT_JOBS_QUEUE
        ? {
            jobsQueue: await openQueue(env.METRICOPT_JOBS_QUEUE, {
              deadLetterQueueUrl: env.METRICOPT_JOBS_DLQ,
            }),
          }
        : {}),
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new CliError('PORT_IN_USE', `port ${port} on ${opts.host} is already in use; pick another with --port`);
    }
    throw e;
  }
  const auth = normalised.length ? `API keys (${normalised.length})` : 'off';
  write(
    `metricopt serve: listening on ${server.url} (store ${store.location}, ${ids.size} value function(s), auth ${auth})\n`,
  );
  await until(server);
  await server.close();
}
