import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildValueApi } from '../../functions/value-api/service.js';
import { inProcessOracles } from '../../shared/adapters/metric-oracle.in-process.js';
import { QueuedMetricOracle } from '../../shared/adapters/metric-oracle.queued.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import type { Evaluator } from '../../shared/ports/evaluator.port.js';
import { builtinEvaluator } from '../../shared/metrics/registry.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { type FitJobSpec, fitJobSpecSchema } from '../../shared/schemas/job.js';
import { runEvaluationWorker } from '../../shared/use-cases/evaluation/evaluate-request.js';
import type { FitOracleFactory } from '../../shared/ports/fit.port.js';
import { putFitLabels, putFitPredictions } from '../../shared/use-cases/byom/fit-inputs.js';
import { fitJobSummary } from '../../shared/use-cases/byom/fit-job-api.js';
import { createFitJob, observationsPrefix } from '../../shared/use-cases/byom/fit-job-spec.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { runFitJob } from '../../shared/use-cases/byom/fit-observations.js';
import { addObservationBatch } from '../../shared/use-cases/byom/observation-store.js';
import { parseObservationText } from '../../shared/use-cases/byom/observation-batches.js';
import { runTrainerWorker } from '../../shared/use-cases/jobs/trainer-worker.js';
import { loadCheckpoint } from '../../shared/storage/value-function-store.js';
import { registryOf } from '../evaluation/fixtures.js';
import { useTestBackend } from '../helpers/backend.js';
import { runCli } from '../helpers/cli.js';
import { makeWorld, type RecordedLine, recordTrajectories, toJsonLines } from './synthetic-world.js';

// Heavy in-process work (fits from predictions): longer than the unit tier's 20-s default under load.
vi.setConfig({ testTimeout: 60_000 });

/**
 * The metric by evaluator instead of by value (issue 12): lines name float32 predictions on
 * uploaded labels, scored when the fit runs by a registered evaluator (in process, or through
 * the evaluation queue). The predictions encode the synthetic world's metric: of N positive
 * examples the first round(m N) are scored negative, so `mcr` gives back m to 1/N.
 */
const N = 40;
const world = makeWorld(3, 11);
const recorded = recordTrajectories(world, { trajectories: 8, steps: 6, K: 3, seed: 12 });
const wrongOf = (m: number) => Math.min(N, Math.max(0, Math.round(m * N)));
const predictionsOf = (m: number) => Float32Array.from({ length: N }, (_, i) => (i < wrongOf(m) ? 0.2 : 0.8));
const keyOf = (l: RecordedLine) => `${l.trajectory}.s${l.step}.f32`;
const labels = { classes: 2, labels: Array.from({ length: N }, () => 1) };
const builtin = (name: string): Evaluator => {
  const e = builtinEvaluator(name);
  if (!e.ok) throw e.error;
  return e.value;
};
const mcr = builtin('mcr');

/** The lines with `predictions` where `metric` was observed. */
const predictionLines = (evaluator = 'mcr') =>
  recorded.map(({ metric, ...l }) => (metric === undefined ? l : { ...l, predictions: { evaluator, key: keyOf(l) } }));
/** The same lines with the values the evaluator gives (what a client that scores itself would send). */
const valueLines = recorded.map((l) => (l.metric === undefined ? l : { ...l, metric: wrongOf(l.metric) / N }));

const spec = (id: string, direction: 'minimize' | 'maximize' = 'minimize'): FitJobSpec =>
  fitJobSpecSchema.parse({
    format: 'metricopt.fit-job',
    schemaVersion: 1,
    id,
    metric: { name: 'mcr', direction },
    overrides: { metaTrain: { ensemble: 1, train: { epochs: 3 } } },
    output: { valueFunctionId: 'vf' },
  });

let dir: string;
let backend: string;
beforeAll(async () => {
  backend = await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-pred-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A store with the job, its labels, every prediction set and the given lines. */
async function prepared(
  name: string,
  s: FitJobSpec,
  lines: readonly object[],
  inputs = true,
  predictionsFor: (l: RecordedLine) => Float32Array = (l) => predictionsOf(l.metric as number),
) {
  const store = new FsObjectStore(join(dir, name));
  expect((await createFitJob(store, s)).ok).toBe(true);
  if (inputs) {
    expect((await putFitLabels(store, s.id, labels)).ok).toBe(true);
    for (const l of recorded) {
      if (l.metric === undefined) continue;
      const p = predictionsFor(l);
      expect((await putFitPredictions(store, s.id, keyOf(l), new Uint8Array(p.buffer))).ok).toBe(true);
    }
  }
  const parsed = parseObservationText(toJsonLines(lines as RecordedLine[]), name);
  if (!parsed.ok) throw parsed.error;
  expect((await addObservationBatch(store, observationsPrefix(s), parsed.value, name)).ok).toBe(true);
  return store;
}

const fitted = async (store: FsObjectStore) => {
  const c = await loadCheckpoint(store, 'vf', 1);
  if (!c.ok) throw c.error;
  const { members, inputNormalisation, targetNormalisation } = c.value as ValueFunctionCheckpoint;
  return { members, inputNormalisation, targetNormalisation };
};

describe('lines scored from predictions by a registered evaluator', () => {
  it('in process: the fit equals the fit of the values the evaluator gives, bit for bit', async () => {
    const byValue = await prepared('by-value', spec('job'), valueLines, false);
    expect((await runFitJob(spec('job'), { store: byValue, progress: silentProgress, backend })).ok).toBe(true);
    const byPredictions = await prepared('by-predictions', spec('job'), predictionLines());
    const r = await runFitJob(spec('job'), {
      store: byPredictions,
      progress: silentProgress,
      backend,
      oracleFor: inProcessOracles(builtinEvaluator),
    });
    expect(r.ok && r.value.kind).toBe('done');
    expect(await fitted(byPredictions)).toEqual(await fitted(byValue));
    const status = await readJobStatus(byPredictions, 'job');
    const observed = recorded.filter((l) => l.metric !== undefined).length;
    expect(status.ok && status.value.evaluations).toEqual({
      total: observed,
      sent: observed,
      returned: observed,
      failed: 0,
    });
    const summary = await fitJobSummary(byPredictions, 'job');
    expect(summary.ok && summary.value.uploads).toMatchObject({
      predictionLines: observed,
      labels: { n: N, classes: 2 },
      predictions: observed,
    });
  });

  it('through the evaluation queue and its workers: the same fit as in process', async () => {
    const store = await prepared('queued', spec('job'), predictionLines());
    const queue = new LocalQueue(join(dir, 'queued-eval-queue'), { visibilityTimeoutMs: 5000, maxReceiveCount: 3 });
    const stop = new AbortController();
    const worker = runEvaluationWorker(
      {
        store,
        registry: await registryOf(),
        workerId: 'eval-1',
        maxReceiveCount: 3,
        evaluatorTimeoutMs: 5000,
        retryDelayMs: 5,
      },
      { queue, signal: stop.signal, waitMs: 50, batchSize: 8 },
    );
    const oracles: QueuedMetricOracle[] = [];
    const oracleFor: FitOracleFactory = async (metric) => {
      const o = new QueuedMetricOracle({ queue, store, metric, pollMs: 5 });
      oracles.push(o);
      return o;
    };
    try {
      const r = await runFitJob(spec('job'), { store, progress: silentProgress, backend, oracleFor });
      expect(r.ok && r.value.kind).toBe('done');
    } finally {
      stop.abort();
      await worker;
    }
    expect(oracles.reduce((a, o) => a + o.calls, 0)).toBe(recorded.filter((l) => l.metric !== undefined).length);
    expect(await fitted(store)).toEqual(await fitted(new FsObjectStore(join(dir, 'by-predictions'))));
  });

  it('a failed evaluation (after its retries) is reported with the count and the first failure; the fit goes on', async () => {
    // One prediction set is marked (its last score 0.79, still positive): the evaluator throws on it.
    const marked = recorded.find((l) => l.metric !== undefined && l.step > 0) as RecordedLine;
    const mark = Math.fround(0.79);
    let markedCalls = 0;
    const flaky: Evaluator = {
      name: 'flaky',
      direction: 'minimize',
      evaluate(input) {
        if (input.scores[N - 1] === mark) {
          markedCalls++;
          throw new Error('flaky evaluator failure');
        }
        return mcr.evaluate(input);
      },
    };
    const store = await prepared('flaky', spec('job'), predictionLines('flaky'), true, (l) => {
      const p = predictionsOf(l.metric as number);
      if (l === marked) p[N - 1] = mark;
      return p;
    });
    const r = await runFitJob(spec('job'), {
      store,
      progress: silentProgress,
      backend,
      oracleFor: inProcessOracles((name) => (name === 'flaky' ? { ok: true, value: flaky } : builtinEvaluator(name))),
    });
    expect(r.ok && r.value.kind).toBe('done');
    expect(markedCalls).toBe(3); // the one retry policy: three attempts
    const observed = recorded.filter((l) => l.metric !== undefined).length;
    const status = await readJobStatus(store, 'job');
    if (!status.ok) throw status.error;
    expect(status.value.evaluations).toEqual({ total: observed, sent: observed, returned: observed - 1, failed: 1 });
    expect(status.value.lastError?.message).toMatch(
      new RegExp(
        `^1 of ${observed} predictions could not be scored \\(first: trajectory '${marked.trajectory}' step ${marked.step}: EVALUATOR_FAILED: .*flaky evaluator failure`,
      ),
    );
  });

  it('refuses what it cannot score: no evaluators here, an unknown evaluator, the wrong direction', async () => {
    const none = await prepared('none', spec('job'), predictionLines());
    const a = await runFitJob(spec('job'), { store: none, progress: silentProgress, backend });
    expect(!a.ok && a.error.code).toBe('OBSERVATION_PREDICTIONS_UNSUPPORTED');

    const unknown = await prepared('unknown', spec('job'), predictionLines('no-such-metric'));
    const b = await runFitJob(spec('job'), {
      store: unknown,
      progress: silentProgress,
      backend,
      oracleFor: inProcessOracles(builtinEvaluator),
    });
    expect(!b.ok && b.error.code).toBe('PREDICTIONS_INVALID');
    expect(!b.ok && b.error.message).toMatch(/evaluator 'no-such-metric' cannot score here: UNKNOWN_METRIC/);

    const wrongWay = await prepared('wrong-way', spec('job', 'maximize'), predictionLines());
    const c = await runFitJob(spec('job', 'maximize'), {
      store: wrongWay,
      progress: silentProgress,
      backend,
      oracleFor: inProcessOracles(builtinEvaluator),
    });
    expect(!c.ok && c.error.message).toMatch(/evaluator 'mcr' does not maximize/);
    const status = await readJobStatus(wrongWay, 'job');
    expect(status.ok && status.value.state).toBe('failed');
  });
});

describe('labels and predictions over the API, scored through the jobs and evaluation queues', () => {
  it('uploads are checked and idempotent; start needs every named prediction set; a trainer worker scores and fits', async () => {
    const store = new FsObjectStore(join(dir, 'api'));
    const jobsQueue = new LocalQueue(join(dir, 'api-jobs'));
    const evaluationQueue = new LocalQueue(join(dir, 'api-eval'), { visibilityTimeoutMs: 5000, maxReceiveCount: 3 });
    const { app } = buildValueApi({
      store,
      auth: { mode: 'none' },
      maxBodyBytes: 1 << 20,
      maxRows: 64,
      refreshMs: 0,
      jobsQueue,
    });
    const post = (path: string, body: string | Uint8Array, type: string) =>
      app.request(path, { method: 'POST', headers: { 'content-type': type }, body });
    const code = async (r: Response) => ({
      status: r.status,
      code: ((await r.json()) as { error?: { code: string } }).error?.code,
    });
    const f32 = (a: Float32Array) => new Uint8Array(a.buffer);
    const create = await post(
      '/v1/fit-jobs',
      JSON.stringify({
        id: 'api-job',
        metric: { name: 'mcr', direction: 'minimize' },
        overrides: { metaTrain: { ensemble: 1, train: { epochs: 3 } } },
        output: { valueFunctionId: 'vf' },
      }),
      'application/json',
    );
    expect(create.status).toBe(201);
    const lines = predictionLines();
    expect(
      (await post('/v1/fit-jobs/api-job/observations', toJsonLines(lines as RecordedLine[]), 'application/x-ndjson'))
        .status,
    ).toBe(200);

    // Labels: checked, stored once, the same again is 200, other labels 409.
    expect(
      await code(
        await post(
          '/v1/fit-jobs/api-job/labels',
          JSON.stringify({ classes: 2, labels: [0, 1, 2] }),
          'application/json',
        ),
      ),
    ).toEqual({ status: 400, code: 'PREDICTIONS_INVALID' });
    expect((await post('/v1/fit-jobs/api-job/labels', JSON.stringify(labels), 'application/json')).status).toBe(201);
    expect((await post('/v1/fit-jobs/api-job/labels', JSON.stringify(labels), 'application/json')).status).toBe(200);
    expect(
      await code(
        await post('/v1/fit-jobs/api-job/labels', JSON.stringify({ classes: 2, labels: [0] }), 'application/json'),
      ),
    ).toEqual({ status: 409, code: 'PREDICTIONS_CONFLICT' });

    // Predictions: float32 only, finite, as many as the labels need; start refuses while any is missing.
    const observed = recorded.filter((l) => l.metric !== undefined);
    const [first, ...rest] = observed as [RecordedLine, ...RecordedLine[]];
    expect(
      await code(
        await post(`/v1/fit-jobs/api-job/predictions/${keyOf(first)}`, f32(new Float32Array(N)), 'application/json'),
      ),
    ).toEqual({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(
      await code(
        await post(
          `/v1/fit-jobs/api-job/predictions/${keyOf(first)}`,
          f32(new Float32Array(N - 1)),
          'application/octet-stream',
        ),
      ),
    ).toEqual({ status: 400, code: 'PREDICTIONS_INVALID' });
    const nan = predictionsOf(first.metric as number);
    nan[3] = Number.NaN;
    const bad = await post(`/v1/fit-jobs/api-job/predictions/${keyOf(first)}`, f32(nan), 'application/octet-stream');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/value 3 is NaN/);
    for (const l of rest) {
      const r = await post(
        `/v1/fit-jobs/api-job/predictions/${keyOf(l)}`,
        f32(predictionsOf(l.metric as number)),
        'application/octet-stream',
      );
      expect(r.status).toBe(201);
    }
    const early = await post('/v1/fit-jobs/api-job/start', '', 'application/json');
    expect(early.status).toBe(400);
    expect(((await early.json()) as { error: { message: string } }).error.message).toContain(
      `trajectory '${first.trajectory}' step ${first.step}: predictions '${keyOf(first)}' were not uploaded`,
    );
    const last = f32(predictionsOf(first.metric as number));
    expect(
      (await post(`/v1/fit-jobs/api-job/predictions/${keyOf(first)}`, last, 'application/octet-stream')).status,
    ).toBe(201);
    expect(
      (await post(`/v1/fit-jobs/api-job/predictions/${keyOf(first)}`, last, 'application/octet-stream')).status,
    ).toBe(200);
    expect((await post('/v1/fit-jobs/api-job/start', '', 'application/json')).status).toBe(202);
    expect(await code(await post('/v1/fit-jobs/api-job/labels', JSON.stringify(labels), 'application/json'))).toEqual({
      status: 409,
      code: 'FIT_JOB_STARTED',
    });

    // The trainer worker takes the job; its predictions go to the evaluation queue's worker.
    const stop = new AbortController();
    let evaluated = 0;
    const evaluator = runEvaluationWorker(
      { store, registry: await registryOf(), workerId: 'eval', maxReceiveCount: 3, evaluatorTimeoutMs: 5000 },
      { queue: evaluationQueue, signal: stop.signal, waitMs: 50, batchSize: 8, onOutcome: () => evaluated++ },
    );
    try {
      await runTrainerWorker({
        store,
        queue: jobsQueue,
        load: () => Promise.reject(new Error('a fit job loads no data set')),
        fitOracles: async (metric) => new QueuedMetricOracle({ queue: evaluationQueue, store, metric, pollMs: 5 }),
        backend,
        progress: silentProgress,
        workerId: 'trainer',
        idleExitMs: 300,
      });
    } finally {
      stop.abort();
      await evaluator;
    }
    expect(evaluated).toBe(observed.length);
    const state = (await (await app.request('/v1/fit-jobs/api-job')).json()) as Record<string, unknown>;
    expect(state).toMatchObject({
      state: 'done',
      status: { valueFunction: { id: 'vf', version: 1 }, evaluations: { returned: observed.length, failed: 0 } },
    });
    expect(await fitted(store)).toEqual(await fitted(new FsObjectStore(join(dir, 'by-predictions'))));
    expect((await app.request('/v1/value-functions/vf')).status).toBe(200);
  });
});

describe('metricopt fit with --labels and prediction files', () => {
  it('stops an evaluator module that never returns at its deadline (EVALUATOR_TIMEOUT), instead of hanging', async () => {
    const folder = join(dir, 'cli-spin');
    await mkdir(join(folder, 'preds'), { recursive: true });
    await writeFile(
      join(folder, 'spin.mjs'),
      "export default { name: 'spin', direction: 'minimize', evaluate() { for (;;) {} } };\n",
    );
    await writeFile(join(folder, 'labels.json'), JSON.stringify(labels));
    await writeFile(join(folder, 'obs.jsonl'), toJsonLines(predictionLines('spin') as RecordedLine[]));
    for (const l of recorded.filter((r) => r.metric !== undefined)) {
      await writeFile(join(folder, 'preds', keyOf(l)), predictionsOf(l.metric as number));
    }
    const r = await runCli([
      'fit',
      '--observations',
      join(folder, 'obs.jsonl'),
      '--labels',
      join(folder, 'labels.json'),
      '--predictions',
      join(folder, 'preds'),
      '--evaluator-module',
      join(folder, 'spin.mjs'),
      '--evaluator-timeout-ms',
      '100',
      '--id',
      'spin-vf',
      '--direction',
      'minimize',
      '--job',
      'spin-job',
      '--store',
      join(dir, 'spin-store'),
      '--backend',
      backend as 'wasm',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('EVALUATOR_TIMEOUT');
  }, 120_000);

  it('imports the files the lines name and fits; a missing file ends it with the line and nothing stored', async () => {
    const folder = join(dir, 'cli-files');
    await mkdir(join(folder, 'preds'), { recursive: true });
    await writeFile(join(folder, 'labels.json'), JSON.stringify(labels));
    await writeFile(join(folder, 'obs.jsonl'), toJsonLines(predictionLines() as RecordedLine[]));
    const observed = recorded.filter((l) => l.metric !== undefined);
    for (const l of observed.slice(1)) {
      await writeFile(join(folder, 'preds', keyOf(l)), predictionsOf(l.metric as number));
    }
    const args = (storeName: string) => [
      'fit',
      '--observations',
      join(folder, 'obs.jsonl'),
      '--labels',
      join(folder, 'labels.json'),
      '--predictions',
      join(folder, 'preds'),
      '--id',
      'vf',
      '--direction',
      'minimize',
      '--metric-name',
      'mcr',
      '--ensemble',
      '1',
      '--epochs',
      '3',
      '--job',
      'job',
      '--store',
      join(dir, storeName),
      '--backend',
      backend as 'wasm',
    ];
    const missing = await runCli(args('cli-store'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      `[PREDICTIONS_INVALID]: fit job 'job': trajectory '${observed[0]?.trajectory}' step ${observed[0]?.step}: predictions '${keyOf(observed[0] as RecordedLine)}' were not uploaded`,
    );
    expect(await readdir(join(dir, 'cli-store', 'jobs', 'job')).catch(() => [])).not.toContain('observations');
    await writeFile(
      join(folder, 'preds', keyOf(observed[0] as RecordedLine)),
      predictionsOf(observed[0]?.metric as number),
    );
    const done = await runCli(args('cli-store'));
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/checkpoint vf v1 written/);
    expect(await fitted(new FsObjectStore(join(dir, 'cli-store')))).toEqual(
      await fitted(new FsObjectStore(join(dir, 'by-predictions'))),
    );
  });
});
