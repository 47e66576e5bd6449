import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEvaluatorModule } from '../shared/adapters/evaluator-module.in-process.js';
import { webhookEvaluatorOf } from '../shared/adapters/evaluator.webhook.js';
import { QueuedMetricOracle } from '../shared/adapters/metric-oracle.queued.js';
import { FsObjectStore } from '../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../shared/adapters/queue.local.js';
import { createEvaluatorRegistry } from '../shared/metrics/evaluator-registry.js';
import type { MetricOracle } from '../shared/ports/metric-oracle.port.js';
import type { EvaluatorSpec } from '../shared/schemas/evaluation.js';
import { CliError } from './errors.js';

export interface LocalQueueOracleOptions {
  /** Built-in metric name (used when no module is given). */
  metric: string;
  /** Path of a user evaluator module, if any. */
  evaluatorModule?: string;
  workers: number;
  /** Folder for the durable queue and the object store of predictions. */
  dir: string;
  /** Limit on one evaluator call (default 60 s); the queue's visibility timeout is set above it. */
  evaluatorTimeoutMs?: number;
  /** How long one batch of queries may wait for its results (default 10 min). */
  deadlineMs?: number;
  /** Deliveries before a failing query is dead-lettered (default 3). */
  maxReceiveCount?: number;
  /** First retry delay after an evaluator failure, doubled per delivery (default 1 s). */
  retryDelayMs?: number;
  /** Messages each worker receives and evaluates together (default 1). */
  batchSize?: number;
}

export type LocalQueueOracle = MetricOracle & {
  close(): Promise<void>;
  readonly queue: LocalQueue;
  readonly store: FsObjectStore;
  /** The worker processes, for tests that kill one. */
  readonly workers: readonly ChildProcess[];
};

/**
 * `demo --via-queue`: a durable local queue and a store under `dir`, N evaluator worker
 * processes (`metricopt evaluate`) consuming it, and the queue-backed oracle the trainer uses.
 * close() stops the workers (SIGTERM: each finishes its current message first).
 */
export async function startLocalQueueOracle(options: LocalQueueOracleOptions): Promise<LocalQueueOracle> {
  if (!Number.isInteger(options.workers) || options.workers < 1) {
    throw new CliError('USAGE', `--workers must be a positive integer, got '${options.workers}'`);
  }
  const evaluatorTimeoutMs = options.evaluatorTimeoutMs ?? 60_000;
  const specs: EvaluatorSpec[] = options.evaluatorModule ? [{ kind: 'module', path: options.evaluatorModule }] : [];
  // Resolve here first: a bad module or an unknown metric fails before any process starts.
  const registry = await createEvaluatorRegistry(specs, {
    loadModule: loadEvaluatorModule,
    webhook: (spec) => webhookEvaluatorOf(spec),
  });
  if (!registry.ok) throw registry.error;
  const evaluator = options.evaluatorModule
    ? registry.value.list().find((e) => e.source === options.evaluatorModule)
    : undefined;
  const resolved = registry.value.resolve(evaluator?.name ?? options.metric);
  if (!resolved.ok) throw resolved.error;

  const queueDir = join(resolve(options.dir), 'queue');
  const storeDir = join(resolve(options.dir), 'store');
  const queue = new LocalQueue(queueDir, {
    visibilityTimeoutMs: evaluatorTimeoutMs + 5000,
    maxReceiveCount: options.maxReceiveCount ?? 3,
  });
  const store = new FsObjectStore(storeDir);
  await queue.counts(); // creates the folder and fixes its attributes before the workers open it

  const pool = spawnEvaluateWorkers({
    count: options.workers,
    args: [
      '--queue',
      queueDir,
      '--store',
      storeDir,
      '--evaluator-timeout-ms',
      String(evaluatorTimeoutMs),
      ...(options.evaluatorModule ? ['--evaluator-module', options.evaluatorModule] : []),
      ...(options.retryDelayMs === undefined ? [] : ['--retry-delay-ms', String(options.retryDelayMs)]),
      ...(options.batchSize === undefined ? [] : ['--batch-size', String(options.batchSize)]),
    ],
  });
  const oracle = new QueuedMetricOracle({
    queue,
    store,
    metric: {
      name: resolved.value.name,
      direction: resolved.value.direction,
      ...(resolved.value.outputs === undefined ? {} : { outputs: resolved.value.outputs }),
    },
    deadlineMs: options.deadlineMs ?? 600_000,
    health: pool.health,
  });
  return Object.assign(oracle, {
    queue,
    store,
    workers: pool.children,
    close: async () => {
      await pool.stop();
      queue.close();
    },
  });
}

export interface WorkerPool {
  children: ChildProcess[];
  /** Why the pool cannot answer any more (every worker exited), or undefined. */
  health(): string | undefined;
  /** SIGTERM, then SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `metricopt evaluate <args>` `count` times as separate OS processes. */
export function spawnEvaluateWorkers(options: { count: number; args: string[]; inheritOutput?: boolean }): WorkerPool {
  const bin = metricoptBin();
  const children: ChildProcess[] = [];
  const exits: string[] = [];
  for (let i = 0; i < options.count; i++) {
    const child = spawn(process.execPath, [bin, 'evaluate', ...options.args], {
      stdio: ['ignore', options.inheritOutput ? 'inherit' : 'ignore', options.inheritOutput ? 'inherit' : 'pipe'],
    });
    let stderrTail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString()).slice(-2000);
    });
    child.on('exit', (code, signal) => {
      const lastLine = stderrTail.trim().split('\n').pop() ?? '';
      exits.push(`${signal ? `signal ${signal}` : `code ${code}`}${lastLine ? `: ${lastLine}` : ''}`);
    });
    children.push(child);
  }
  const running = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
  return {
    children,
    health: () =>
      running().length === 0 && exits.length > 0
        ? `all ${children.length} evaluator workers exited (last: ${exits[exits.length - 1]})`
        : undefined,
    stop: async (graceMs = 10_000) => {
      await Promise.all(
        running().map(
          (c) =>
            new Promise<void>((done) => {
              const kill = setTimeout(() => c.kill('SIGKILL'), graceMs);
              c.once('exit', () => {
                clearTimeout(kill);
                done();
              });
              c.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

/** bin/metricopt.mjs of this package, found from this module in cli/ (tests) or dist/cli/ (built). */
function metricoptBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'metricopt') {
      if (!existsSync(join(dir, 'dist', 'cli', 'main.js'))) {
        throw new CliError(
          'NOT_BUILT',
          'evaluator workers run the built CLI: dist/ is missing; run `npm run build` first',
        );
      }
      return join(dir, 'bin', 'metricopt.mjs');
    }
    dir = dirname(dir);
  }
  throw new CliError('INTERNAL', 'cannot find the metricopt package root to start evaluator workers');
}
