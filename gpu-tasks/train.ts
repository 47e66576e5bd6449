import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '../shared/adapters/compute-backend.js';
import { jsonLinesLogger } from '../shared/adapters/logger.json-lines.js';
import { shutdownSignal } from '../shared/adapters/shutdown-signal.js';
import { openObjectStore, openQueue, storeOptionsOf } from '../shared/adapters/from-url.js';
import { loadJobInputs } from '../shared/adapters/job-inputs.js';
import { InProcessMetricOracle, inProcessOracles } from '../shared/adapters/metric-oracle.in-process.js';
import { QueuedMetricOracle } from '../shared/adapters/metric-oracle.queued.js';
import { EcsAgentTaskProtection } from '../shared/adapters/task-protection.ecs-agent.js';
import type { Evaluator } from '../shared/ports/evaluator.port.js';
import { builtinEvaluator } from '../shared/metrics/registry.js';
import type { MetricOracle } from '../shared/ports/metric-oracle.port.js';
import type { ObjectStore } from '../shared/ports/object-store.port.js';
import type { ProgressReporter } from '../shared/ports/progress.port.js';
import type { JobSpec } from '../shared/schemas/job.js';
import { parseJobSpecText } from '../shared/use-cases/jobs/job-spec.js';
import { loadJobSpec, trainValueFunction } from '../shared/use-cases/jobs/train-value-function.js';
import { runTrainerWorker } from '../shared/use-cases/jobs/trainer-worker.js';
import { BACKEND_ORDER, parseTrainTaskEnv, type TrainTaskEnv } from './config.js';

/**
 * The training container's entry point: the job and the store from the environment, the
 * backend by availability, then the same use-case as `metricopt train --job`. Logs are JSON
 * lines on stdout. SIGTERM (ECS before a spot reclaim, `docker stop`) writes a final
 * checkpoint and exits 0; run the task again and the job resumes.
 */
const logger = jsonLinesLogger((line) => process.stdout.write(line), { clock: () => new Date() });

/** Progress as JSON lines: each stage's start and end, and at most one tick line per 10%. */
function jsonProgress(): ProgressReporter {
  let stage = '';
  let total = 0;
  let lastDecile = -1;
  let started = 0;
  return {
    start(s, t) {
      stage = s;
      total = t;
      lastDecile = -1;
      started = performance.now();
      logger.info('stage-start', { stage, total });
    },
    tick(done, note) {
      const decile = total > 0 ? Math.floor((10 * done) / total) : 0;
      if (decile <= lastDecile || decile >= 10) return;
      lastDecile = decile;
      logger.info('stage-progress', { stage, done, total, ...(note ? { note } : {}) });
    },
    end(summary) {
      logger.info('stage-end', {
        stage,
        seconds: (performance.now() - started) / 1000,
        ...(summary ? { summary } : {}),
      });
    },
  };
}

/** The backend METRICOPT_BACKEND names could not be loaded: the task fails rather than train elsewhere. */
export class BackendUnavailableError extends Error {
  readonly code = 'BACKEND_UNAVAILABLE';
  override readonly name = 'BackendUnavailableError';
}

/**
 * The backend METRICOPT_BACKEND names, or under `auto` the first of the auto order that loads.
 * A named backend that does not load is a BACKEND_UNAVAILABLE error (the task exits 1): a GPU
 * task whose GPU backend is broken never trains on wasm at GPU prices. The deployed task names
 * its backend (lib/trainer-environment.ts); `auto` is for a machine whose hardware is unknown.
 */
export async function chooseBackend(preference: TrainTaskEnv['METRICOPT_BACKEND']): Promise<string> {
  const order = preference === 'auto' ? BACKEND_ORDER : [preference];
  const tried: string[] = [];
  for (const name of order) {
    try {
      const b = await selectBackend(name);
      logger.info('backend', { backend: b.name, note: b.note, tried });
      return b.name;
    } catch (e) {
      tried.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new BackendUnavailableError(
    preference === 'auto'
      ? `no compute backend could be loaded (${tried.join('; ')})`
      : `METRICOPT_BACKEND=${preference} could not be loaded and no other backend is tried (${tried.join('; ')})`,
  );
}

/** Where loadJobInputs reads from: the store settings and the data folder of image sets. */
function jobInputOptions(env: TrainTaskEnv) {
  return {
    ...storeOptionsOf(env),
    ...(env.METRICOPT_DATA_DIR === undefined ? {} : { dataDir: env.METRICOPT_DATA_DIR }),
  };
}

async function readJob(env: TrainTaskEnv, store: ObjectStore): Promise<JobSpec> {
  if (env.METRICOPT_JOB === undefined) {
    const stored = await loadJobSpec(store, env.METRICOPT_JOB_ID as string);
    if (!stored.ok) throw stored.error;
    return stored.value;
  }
  const where = env.METRICOPT_JOB;
  let text: string | undefined;
  if (where.startsWith('s3://')) {
    const m = /^(s3:\/\/[^/]+)\/(.+)$/.exec(where);
    const bytes = m
      ? await (await openObjectStore(m[1] as string, storeOptionsOf(env))).get(m[2] as string)
      : undefined;
    text = bytes && new TextDecoder().decode(bytes);
  } else {
    text = await readFile(where.startsWith('file://') ? fileURLToPath(where) : where, 'utf8').catch(() => undefined);
  }
  if (text === undefined) throw new Error(`METRICOPT_JOB ${where} could not be read`);
  const parsed = parseJobSpecText(text, where);
  if (!parsed.ok) throw parsed.error;
  return env.METRICOPT_JOB_ID && env.METRICOPT_JOB_ID !== parsed.value.id
    ? { ...parsed.value, id: env.METRICOPT_JOB_ID }
    : parsed.value;
}

export async function runTrainTask(processEnv: Record<string, string | undefined>): Promise<number> {
  const stop = shutdownSignal((signal) => logger.warn('stopping', { signal }));
  try {
    const env = parseTrainTaskEnv(processEnv);
    const store = await openObjectStore(env.METRICOPT_STORE, storeOptionsOf(env));
    // Metric queries go to the evaluation queue when one is configured, else run in this process.
    const queued = async (metric: MetricOracle['metric']) => {
      const queue = await openQueue(env.METRICOPT_EVALUATION_QUEUE as string, {
        deadLetterQueueUrl: env.METRICOPT_EVALUATION_DLQ,
      });
      const { name, direction, outputs } = metric;
      return new QueuedMetricOracle({
        queue,
        store,
        metric: { name, direction, ...(outputs === undefined ? {} : { outputs }) },
      });
    };
    const oracleFor = async (evaluator: Evaluator): Promise<MetricOracle> =>
      env.METRICOPT_EVALUATION_QUEUE === undefined ? new InProcessMetricOracle(evaluator) : queued(evaluator);
    if (env.METRICOPT_JOB === undefined && env.METRICOPT_JOB_ID === undefined && env.METRICOPT_JOBS_QUEUE) {
      const backend = await chooseBackend(env.METRICOPT_BACKEND);
      const queue = await openQueue(env.METRICOPT_JOBS_QUEUE, { deadLetterQueueUrl: env.METRICOPT_JOBS_DLQ });
      logger.info('worker', { store: store.location, queue: queue.location });
      const summary = await runTrainerWorker({
        store,
        queue,
        async load(spec) {
          const inputs = await loadJobInputs(spec, jobInputOptions(env));
          return { ...inputs, oracle: await oracleFor(inputs.evaluator) };
        },
        // A fit job's predictions: scored by the evaluation queue's workers (the registered
        // evaluators, the user's included), or by a built-in here when no queue is configured.
        fitOracles: (metric) =>
          env.METRICOPT_EVALUATION_QUEUE === undefined ? inProcessOracles(builtinEvaluator)(metric) : queued(metric),
        backend,
        progress: jsonProgress(),
        workerId: process.env.HOSTNAME ?? `${process.pid}`,
        signal: stop.signal,
        idleExitMs: env.METRICOPT_IDLE_EXIT_S === undefined ? undefined : env.METRICOPT_IDLE_EXIT_S * 1000,
        visibilityTimeoutMs: env.METRICOPT_JOBS_VISIBILITY_S * 1000,
        // On ECS: scale-in and deployments leave a trainer alone while it holds a message.
        protection: env.ECS_AGENT_URI === undefined ? undefined : new EcsAgentTaskProtection(env.ECS_AGENT_URI),
        logger,
      });
      logger.info('worker-exit', { ...summary });
      return 0;
    }
    const spec = await readJob(env, store);
    logger.info('job', { jobId: spec.id, store: store.location, output: spec.output.valueFunctionId });
    const backend = await chooseBackend(env.METRICOPT_BACKEND);
    const inputs = await loadJobInputs(spec, jobInputOptions(env));
    const result = await trainValueFunction(spec, {
      store,
      ...inputs,
      oracle: await oracleFor(inputs.evaluator),
      progress: jsonProgress(),
      backend,
      signal: stop.signal,
    });
    if (!result.ok) throw result.error;
    const out = result.value;
    if (out.kind === 'done') {
      logger.info('done', {
        jobId: spec.id,
        valueFunction: { id: out.checkpoint.id, version: out.checkpoint.version },
        health: out.health,
        resumed: out.resumed,
      });
    } else logger.info(out.kind, { jobId: spec.id, ...out });
    return 0;
  } catch (e) {
    const error = e as { code?: unknown; message?: unknown };
    logger.error('failed', {
      code: typeof error.code === 'string' ? error.code : 'INTERNAL',
      message: String(error.message ?? e),
    });
    return 1;
  } finally {
    stop.dispose();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await runTrainTask(process.env);
}
