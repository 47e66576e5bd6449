import { hostname } from 'node:os';
import type { Command } from 'commander';
import { locationKind, openObjectStore, openQueue } from '../../shared/adapters/from-url.js';
import { shutdownSignal } from '../../shared/adapters/shutdown-signal.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { loadEvaluatorModuleInWorker } from '../../shared/adapters/evaluator-module.worker-thread.js';
import { webhookEvaluatorOf } from '../../shared/adapters/evaluator.webhook.js';
import { createEvaluatorRegistry } from '../../shared/metrics/evaluator-registry.js';
import { type EvaluatorSpec, parseWebhooks } from '../../shared/schemas/evaluation.js';
import { runEvaluationWorker } from '../../shared/use-cases/evaluation/evaluate-request.js';
import { CliError } from '../errors.js';
import { storeOptionsFromEnv } from '../locations.js';
import { spawnEvaluateWorkers } from '../local-queue-oracle.js';
import { cliEnv } from '../env.js';
import { jsonLinesLogger } from '../../shared/adapters/logger.json-lines.js';
import { silentLogger } from '../../shared/ports/logger.port.js';

interface EvaluateOptions {
  queue?: string;
  store?: string;
  dlqUrl?: string;
  workers: string;
  evaluatorModule: string[];
  webhooks?: string;
  evaluatorTimeoutMs: string;
  maxReceiveCount: string;
  retryDelayMs: string;
  visibilityTimeoutMs?: string;
  batchSize: string;
  idleExitMs: string;
  list?: boolean;
  quiet?: boolean;
}

function positiveInt(flag: string, raw: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new CliError('USAGE', `${flag} must be an integer >= ${min}, got '${raw}'`);
  return n;
}

/**
 * `metricopt evaluate`: the evaluator worker as a long-running local process (or a pool of them),
 * running the same use-case as the Lambda function, on the local queue or on SQS.
 */
export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description('Run evaluator workers on an evaluation queue (docs/evaluation-queue.md).')
    .option('--queue <dir|sqs-url>', 'a local queue folder, or an SQS queue URL (with --dlq-url)')
    .option('--store <dir|s3://bucket/prefix>', 'object store holding predictions, labels and results')
    .option('--dlq-url <url>', 'the SQS queue dead-letter queue URL')
    .option('--workers <n>', 'worker processes to run', '1')
    .option(
      '--evaluator-module <path>',
      'user evaluator module to offer (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--webhooks <json>',
      'webhook evaluators, JSON [{name,url,direction}] (default: $METRICOPT_WEBHOOKS; secret: $METRICOPT_WEBHOOK_SECRET)',
    )
    .option('--evaluator-timeout-ms <ms>', 'limit on one evaluator call', '60000')
    .option('--max-receive-count <n>', 'deliveries before dead-lettering (local queue; SQS: its redrive policy)', '3')
    .option('--retry-delay-ms <ms>', 'first retry delay after an evaluator failure, doubled per delivery', '1000')
    .option('--visibility-timeout-ms <ms>', 'local queue visibility timeout (default: evaluator timeout + 5 s)')
    .option('--batch-size <n>', 'messages received and evaluated together per worker', '1')
    .option('--idle-exit-ms <ms>', 'exit after this long without messages (0 = run until stopped)', '0')
    .option('--list', 'list the available evaluators and exit')
    .option('--quiet', 'no start and stop lines')
    .action(async (opts: EvaluateOptions) => {
      const evaluatorTimeoutMs = positiveInt('--evaluator-timeout-ms', opts.evaluatorTimeoutMs);
      const specs: EvaluatorSpec[] = opts.evaluatorModule.map((path) => ({ kind: 'module', path }));
      try {
        specs.push(
          ...parseWebhooks(opts.webhooks ?? cliEnv().METRICOPT_WEBHOOKS ?? '[]', cliEnv().METRICOPT_WEBHOOK_SECRET),
        );
      } catch (e) {
        throw new CliError('USAGE', `--webhooks: ${(e as Error).message}`);
      }
      // User modules run in worker threads: --evaluator-timeout-ms then holds for synchronous code too.
      const registry = await createEvaluatorRegistry(specs, {
        loadModule: (path) => loadEvaluatorModuleInWorker(path),
        webhook: (spec) => webhookEvaluatorOf(spec),
      });
      if (!registry.ok) throw registry.error;
      if (opts.list) {
        for (const e of registry.value.list()) {
          const extra = [e.version && `v${e.version}`, e.source, e.outputs && `outputs=${e.outputs.join(',')}`]
            .filter(Boolean)
            .join(' ');
          process.stdout.write(`${e.name}\t${e.kind}\t${e.direction}${extra ? `\t${extra}` : ''}\n`);
        }
        return;
      }
      if (!opts.queue) throw new CliError('USAGE', 'evaluate: --queue is required (a folder or an SQS queue URL)');
      if (!opts.store) throw new CliError('USAGE', 'evaluate: --store is required (a folder or s3://bucket/prefix)');

      const workers = positiveInt('--workers', opts.workers);
      if (workers > 1) {
        const pool = spawnEvaluateWorkers({ count: workers, args: workerArgs(opts), inheritOutput: true });
        shutdownSignal(() => void pool.stop());
        await Promise.all(pool.children.map((c) => new Promise((done) => c.once('exit', done))));
        return;
      }

      const maxReceiveCount = positiveInt('--max-receive-count', opts.maxReceiveCount);
      if (locationKind(opts.queue) === 'sqs' && !opts.dlqUrl) {
        throw new CliError('USAGE', 'evaluate: --dlq-url is required with an SQS queue URL');
      }
      const queue = await openQueue(opts.queue, {
        deadLetterQueueUrl: opts.dlqUrl,
        visibilityTimeoutMs: opts.visibilityTimeoutMs
          ? positiveInt('--visibility-timeout-ms', opts.visibilityTimeoutMs)
          : evaluatorTimeoutMs + 5000,
        maxReceiveCount,
      });
      const effectiveMax = queue instanceof LocalQueue ? (await queue.attributes()).maxReceiveCount : maxReceiveCount;
      // Each message is held for the queue's visibility timeout, extended while it is evaluated.
      const leaseMs =
        queue instanceof LocalQueue
          ? (await queue.attributes()).visibilityTimeoutMs
          : opts.visibilityTimeoutMs
            ? positiveInt('--visibility-timeout-ms', opts.visibilityTimeoutMs)
            : evaluatorTimeoutMs + 5000;
      const workerId = `${hostname()}:${process.pid}`;
      const stop = shutdownSignal();
      const say = (line: string) => opts.quiet || process.stderr.write(`metricopt evaluate: ${line}\n`);
      say(`worker ${workerId} on ${queue.location} (store ${opts.store})`);
      const { processed } = await runEvaluationWorker(
        {
          store: await openObjectStore(opts.store, storeOptionsFromEnv()),
          registry: registry.value,
          workerId,
          maxReceiveCount: effectiveMax,
          evaluatorTimeoutMs,
          retryDelayMs: positiveInt('--retry-delay-ms', opts.retryDelayMs, 0),
          // The worker's events as JSON lines on stderr (none with --quiet).
          logger: opts.quiet
            ? silentLogger
            : jsonLinesLogger((line) => process.stderr.write(line), { base: { workerId } }),
        },
        {
          queue,
          batchSize: positiveInt('--batch-size', opts.batchSize),
          waitMs: 1000,
          signal: stop.signal,
          idleExitMs: positiveInt('--idle-exit-ms', opts.idleExitMs, 0),
          leaseSeconds: leaseMs / 1000,
        },
      );
      if (queue instanceof LocalQueue) queue.close();
      say(`worker ${workerId} stopped after ${processed} message(s)`);
    });
}

/** The flags of one worker process of a pool: everything but --workers. */
function workerArgs(o: EvaluateOptions): string[] {
  const flag = (name: string, value: string | undefined) => (value === undefined ? [] : [name, value]);
  return [
    ...flag('--queue', o.queue),
    ...flag('--store', o.store),
    ...flag('--dlq-url', o.dlqUrl),
    ...o.evaluatorModule.flatMap((m) => ['--evaluator-module', m]),
    ...flag('--webhooks', o.webhooks),
    ...flag('--evaluator-timeout-ms', o.evaluatorTimeoutMs),
    ...flag('--max-receive-count', o.maxReceiveCount),
    ...flag('--retry-delay-ms', o.retryDelayMs),
    ...flag('--visibility-timeout-ms', o.visibilityTimeoutMs),
    ...flag('--batch-size', o.batchSize),
    ...flag('--idle-exit-ms', o.idleExitMs),
    ...(o.quiet ? ['--quiet'] : []),
  ];
}
