import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { trainerEnvironment } from '../../lib/trainer-environment.js';
import { openObjectStore, openQueue } from '../../shared/adapters/from-url.js';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { Queue } from '../../shared/ports/queue.port.js';
import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { parseJobSpec } from '../../shared/use-cases/jobs/job-spec.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { submitJob } from '../../shared/use-cases/jobs/trainer-worker.js';
import { listCheckpointVersions, loadCheckpoint } from '../../shared/storage/value-function-store.js';
import { buildTrainImage, docker, dockerUnavailable } from '../helpers/docker.js';
import { cliPath, ensureBuiltCli } from '../jobs/built-cli.js';
import { makeWorld, recordTrajectories, toJsonLines } from '../byom/synthetic-world.js';
import { smallA9a, tinyJob } from '../jobs/fixtures.js';
import { urlEvent } from '../value-api/fixtures.js';
import {
  createBucket,
  createQueuePair,
  describeOnLocalStack,
  endpoint,
  localstack,
  type QueuePair,
  uniqueName,
} from './localstack.js';
import { startSqsPoller } from './sqs-poller.js';

/**
 * The deployed wiring end to end on the emulator: a fan-out training job submitted to the SQS
 * jobs queue, the trainer container from gpu-tasks/ run under Docker (`--network host`) with
 * exactly the task definition's environment (lib/trainer-environment.ts) plus the emulator's
 * endpoint, its metric queries answered by the evaluator Lambda handler from the SQS evaluation
 * queue, `docker kill` mid-job and a restart, the checkpoint in S3 equal to a local uninterrupted
 * run's, and the value API (`serve --store s3://...` and its Lambda handler) answering from it.
 */
const IMAGE = 'metricopt-train:cpu';
const JOB = 'e2e-job';
const unavailable = localstack.available ? dockerUnavailable('the LocalStack end-to-end training job') : 'no emulator';

describeOnLocalStack('a training job on S3 and SQS with the trainer container (LocalStack + Docker)', () => {
  let storeUrl: string;
  let store: ObjectStore;
  let jobs: QueuePair;
  let evaluations: QueuePair;
  let jobsQueue: Queue;
  let poller: ReturnType<typeof startSqsPoller> | undefined;
  let localDir: string;
  let jobFile: string;
  const s3 = () => ({ s3Endpoint: endpoint(), s3ForcePathStyle: true });

  beforeAll(async () => {
    if (unavailable) throw new Error(`docker: ${unavailable}`);
    ensureBuiltCli();
    buildTrainImage(IMAGE);
    const bucket = uniqueName('e2e');
    storeUrl = await createBucket(bucket, 'metricopt');
    store = await openObjectStore(storeUrl, s3());
    jobs = await createQueuePair(uniqueName('jobs'), { visibilityTimeoutS: 900, maxReceiveCount: 5 });
    evaluations = await createQueuePair(uniqueName('evals'), { visibilityTimeoutS: 5, maxReceiveCount: 3 });
    jobsQueue = await openQueue(jobs.url, { deadLetterQueueUrl: jobs.dlqUrl, sqsEndpoint: endpoint() });

    // The data set in S3, and the same rows in a local file for the reference run.
    const small = await smallA9a(400);
    localDir = small.dir;
    const raw = await openObjectStore(`s3://${bucket}`, s3());
    await raw.put('data/a9a-small.libsvm', await readFile(small.file));
    const spec = { ...tinyJob(`s3://${bucket}/data/a9a-small.libsvm`, JOB), fanOut: true };
    const parsed = parseJobSpec({ ...spec, checkpoint: { chunkTasks: 2, queryBatch: 3 } });
    if (!parsed.ok) throw parsed.error;
    expect((await submitJob(parsed.value, { store, queue: jobsQueue })).ok).toBe(true);
    jobFile = join(localDir, 'job.json');
    await writeFile(
      jobFile,
      JSON.stringify({ ...parsed.value, dataset: { ...parsed.value.dataset, source: small.file } }),
    );

    // The evaluator function, configured as the stack configures it, fed from the evaluation queue.
    vi.stubEnv('METRICOPT_STORE', storeUrl);
    vi.stubEnv('METRICOPT_DLQ_URL', evaluations.dlqUrl);
    vi.stubEnv('METRICOPT_MAX_RECEIVE_COUNT', '3');
    vi.stubEnv('METRICOPT_S3_ENDPOINT', endpoint());
    vi.stubEnv('METRICOPT_S3_FORCE_PATH_STYLE', 'true');
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    const lambda = await import('../../functions/evaluate-metric/lambda.js');
    const evaluationQueue = await openQueue(evaluations.url, {
      deadLetterQueueUrl: evaluations.dlqUrl,
      sqsEndpoint: endpoint(),
    });
    poller = startSqsPoller({
      queue: evaluationQueue,
      queueArn: evaluations.arn,
      handler: (event: SQSEvent) => lambda.handler(event, {} as never) as Promise<SQSBatchResponse>,
      waitMs: 500,
    });
  }, 600_000);

  afterAll(async () => {
    await poller?.stop();
    vi.unstubAllEnvs();
  });

  const chunksCommitted = async () =>
    (await store.list(`jobs/${JOB}/tasks/`)).filter((k) => k.endsWith('.json')).length;

  it('resumes after docker kill and ends with the uninterrupted checkpoint, which the API serves', async () => {
    // The uninterrupted reference: the same job by one local worker on the durable local queue.
    const reference = join(localDir, 'reference');
    const ref = spawnSync(
      process.execPath,
      [
        cliPath,
        'train',
        '--job',
        jobFile,
        '--store',
        reference,
        '--queue',
        join(localDir, 'queue'),
        '--backend',
        'wasm',
      ],
      { encoding: 'utf8' },
    );
    expect(ref.status, ref.stderr).toBe(0);

    const env = {
      ...trainerEnvironment({
        store: storeUrl,
        jobsQueueUrl: jobs.url,
        jobsDeadLetterQueueUrl: jobs.dlqUrl,
        evaluationQueueUrl: evaluations.url,
        evaluationDeadLetterQueueUrl: evaluations.dlqUrl,
      }),
      // The emulator in place of AWS, and a short hold on job messages so the restart need not wait.
      AWS_ENDPOINT_URL: endpoint(),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      METRICOPT_S3_ENDPOINT: endpoint(),
      METRICOPT_S3_FORCE_PATH_STYLE: 'true',
      METRICOPT_JOBS_VISIBILITY_S: '5',
      // The CPU image built here has no GPU backend: the deployed task names `tensorflow`.
      METRICOPT_BACKEND: 'wasm',
    };
    const name = `metricopt-e2e-${process.pid}`;
    spawnSync('docker', ['rm', '-f', name]);
    docker(
      'create',
      '--name',
      name,
      '--network',
      'host',
      ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
      IMAGE,
    );
    try {
      docker('start', name);
      const deadline = Date.now() + 180_000;
      while ((await chunksCommitted()) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await chunksCommitted()).toBeGreaterThanOrEqual(2);
      docker('kill', name);
      const atKill = await chunksCommitted();
      expect(atKill).toBeLessThan(6);
      expect(docker('logs', name)).toContain('"event":"worker"');

      docker('start', name);
      let status = await readJobStatus(store, JOB);
      while (!(status.ok && status.value.state === 'done') && Date.now() < deadline + 180_000) {
        await new Promise((r) => setTimeout(r, 500));
        status = await readJobStatus(store, JOB);
      }
      expect(status.ok && status.value).toMatchObject({
        state: 'done',
        backend: 'wasm',
        tasks: { done: 12, total: 12 },
        evaluations: { total: 36, sent: 36, returned: 36, failed: 0 },
      });
    } catch (e) {
      spawnSync('docker', ['rm', '-f', name]);
      throw e;
    }
    expect((await listCheckpointVersions(store)).get('tiny-vf')).toEqual([1]);
    const weights = (ck: ValueFunctionCheckpoint) => ({
      members: ck.members,
      inputNormalisation: ck.inputNormalisation,
      targetNormalisation: ck.targetNormalisation,
      training: ck.training,
    });
    const inS3 = await loadCheckpoint(store, 'tiny-vf');
    const local = await loadCheckpoint(await openObjectStore(reference), 'tiny-vf');
    if (!inS3.ok || !local.ok) throw new Error('checkpoint missing');
    expect(weights(inS3.value)).toEqual(weights(local.value));
    const jobsCounts = await jobsQueue.counts();
    expect(jobsCounts.deadLetters).toBe(0);

    // The value API from S3: `metricopt serve --store s3://...` ...
    const phi = new Array(inS3.value.d).fill(0.1);
    const server: ChildProcess = spawn(process.execPath, [cliPath, 'serve', '--store', storeUrl, '--port', '0'], {
      env: { ...process.env, METRICOPT_S3_ENDPOINT: endpoint(), METRICOPT_S3_FORCE_PATH_STYLE: 'true' },
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        server.stdout?.on('data', (b) => {
          out += String(b);
          const m = /listening on (\S+)/.exec(out);
          if (m) resolve(m[1] as string);
        });
        server.on('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
      });
      const post = (path: string, body: unknown) =>
        fetch(`${url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const gradient = await post('/v1/value-functions/tiny-vf/gradient', { phi });
      expect(gradient.status).toBe(200);
      const g = (await gradient.json()) as { gradients: number[][]; version: number };
      expect(g.version).toBe(1);
      expect(g.gradients[0]).toHaveLength(inS3.value.d);
      const guide = await post('/v1/value-functions/tiny-vf/guide', {
        phi,
        lossGradients: [new Array(inS3.value.d).fill(0.01)],
        seed: 1,
      });
      expect(guide.status).toBe(200);
      expect(((await guide.json()) as { direction: number[] }).direction).toHaveLength(inS3.value.d);
      const job = await fetch(`${url}/v1/jobs/${JOB}`);
      expect(((await job.json()) as { state: string }).state).toBe('done');
    } finally {
      server.kill('SIGTERM');
    }

    // ... and its Lambda handler, configured as the stack configures it (with the jobs queue).
    vi.stubEnv('METRICOPT_AUTH', 'iam');
    vi.stubEnv('METRICOPT_JOBS_QUEUE', jobs.url);
    vi.stubEnv('METRICOPT_JOBS_DLQ', jobs.dlqUrl);
    vi.stubEnv('METRICOPT_REFRESH_MS', '1');
    const api = await import('../../functions/value-api/lambda.js');
    const call = async (method: string, path: string, body: string | Uint8Array, type = 'application/json') => {
      const base = urlEvent(path, {}, true);
      const binary = typeof body !== 'string';
      const event = {
        ...base,
        body: binary ? Buffer.from(body).toString('base64') : body,
        isBase64Encoded: binary,
        headers: { ...base.headers, 'content-type': type },
        requestContext: { ...base.requestContext, http: { ...base.requestContext.http, method } },
      };
      const r = (await api.handler(event as never, {} as never)) as { statusCode: number; body: string };
      return { status: r.statusCode, json: JSON.parse(r.body) as Record<string, unknown> };
    };
    /** The fit job's summary once it is done or failed (or after two minutes). */
    const fitEnded = async (id: string) => {
      const deadline = Date.now() + 120_000;
      let fit = await call('GET', `/v1/fit-jobs/${id}`, '');
      while (fit.json.state !== 'done' && fit.json.state !== 'failed' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        fit = await call('GET', `/v1/fit-jobs/${id}`, '');
      }
      return fit;
    };
    try {
      const guided = await call(
        'POST',
        '/v1/value-functions/tiny-vf/guide',
        JSON.stringify({ phi, lossGradients: [new Array(inS3.value.d).fill(0.01)], seed: 1 }),
      );
      expect(guided.status).toBe(200);
      expect(guided.json).toMatchObject({ id: 'tiny-vf', version: 1 });

      // Bring your own model through the same API: create, upload (twice: idempotent), start; the
      // start is a message on the jobs queue, which the trainer container (still running) takes.
      const created = await call(
        'POST',
        '/v1/fit-jobs',
        JSON.stringify({
          id: 'byom-fit',
          metric: { name: 'bowl', direction: 'minimize' },
          output: { valueFunctionId: 'byom-vf' },
        }),
      );
      expect(created.status, JSON.stringify(created.json)).toBe(201);
      const lines = toJsonLines(recordTrajectories(makeWorld(4, 1), { trajectories: 30, steps: 20, K: 5, seed: 2 }));
      const first = await call('POST', '/v1/fit-jobs/byom-fit/observations', lines, 'application/x-ndjson');
      expect(first.status, JSON.stringify(first.json)).toBe(200);
      expect(first.json).toMatchObject({ accepted: 630, duplicates: 0 });
      const again = await call('POST', '/v1/fit-jobs/byom-fit/observations', lines, 'application/x-ndjson');
      expect(again.json).toMatchObject({ accepted: 0, duplicates: 630 });
      expect((await call('POST', '/v1/fit-jobs/byom-fit/start', '')).status).toBe(202);
      const fit = await fitEnded('byom-fit');
      expect(fit.json, docker('logs', '--tail', '5', name)).toMatchObject({ state: 'done', startedVia: 'queue' });
      const served = await call('GET', '/v1/value-functions/byom-vf', '');
      expect(served.status).toBe(200);
      expect(served.json).toMatchObject({ id: 'byom-vf', d: 4, metric: { name: 'bowl', direction: 'minimize' } });

      // The metric by evaluator: lines carry predictions, which the trainer container sends to
      // the SQS evaluation queue and the evaluator function scores (mcr: of N positives the
      // first round(m N) are scored negative, so it gives the bowl's value back to 1/N).
      const N = 40;
      const scoredLines = recordTrajectories(makeWorld(4, 3), { trajectories: 12, steps: 10, K: 3, seed: 4 });
      expect(
        (
          await call(
            'POST',
            '/v1/fit-jobs',
            JSON.stringify({
              id: 'byom-scored',
              metric: { name: 'mcr', direction: 'minimize' },
              output: { valueFunctionId: 'byom-scored-vf' },
            }),
          )
        ).status,
      ).toBe(201);
      const labels = { classes: 2, labels: new Array(N).fill(1) };
      expect((await call('POST', '/v1/fit-jobs/byom-scored/labels', JSON.stringify(labels))).status).toBe(201);
      const withPredictions = [];
      for (const { metric, ...l } of scoredLines) {
        if (metric === undefined) {
          withPredictions.push(l);
          continue;
        }
        const key = `${l.trajectory}.s${l.step}.f32`;
        const wrong = Math.min(N, Math.round(metric * N));
        const scores = Float32Array.from({ length: N }, (_, i) => (i < wrong ? 0.2 : 0.8));
        const up = await call(
          'POST',
          `/v1/fit-jobs/byom-scored/predictions/${key}`,
          new Uint8Array(scores.buffer),
          'application/octet-stream',
        );
        expect(up.status, JSON.stringify(up.json)).toBe(201);
        withPredictions.push({ ...l, predictions: { evaluator: 'mcr', key } });
      }
      const scoredUpload = await call(
        'POST',
        '/v1/fit-jobs/byom-scored/observations',
        toJsonLines(withPredictions),
        'application/x-ndjson',
      );
      expect(scoredUpload.status, JSON.stringify(scoredUpload.json)).toBe(200);
      expect((await call('POST', '/v1/fit-jobs/byom-scored/start', '')).status).toBe(202);
      const scored = await fitEnded('byom-scored');
      const observedLines = scoredLines.filter((l) => l.metric !== undefined).length;
      expect(scored.json, docker('logs', '--tail', '5', name)).toMatchObject({
        state: 'done',
        status: { evaluations: { returned: observedLines, failed: 0 }, valueFunction: { id: 'byom-scored-vf' } },
      });
      // Scored through the queue: the evaluator function wrote one result record per line.
      expect((await store.list('jobs/byom-scored/results/')).length).toBe(observedLines);
    } finally {
      spawnSync('docker', ['rm', '-f', name]);
    }
  });
});
