import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { loadJobInputs } from '../../shared/adapters/job-inputs.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { EcsAgentTaskProtection } from '../../shared/adapters/task-protection.ecs-agent.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import type { Queue, QueueMessage } from '../../shared/ports/queue.port.js';
import { jobSpecSchema } from '../../shared/schemas/job.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { JobError } from '../../shared/storage/job-errors.js';
import { runTrainerWorker, submitJob, type TrainerWorkerDeps } from '../../shared/use-cases/jobs/trainer-worker.js';
import { useTestBackend } from '../helpers/backend.js';
import { smallA9a, tinyJob } from './fixtures.js';
import { jsonLinesLogger } from '../../shared/adapters/logger.json-lines.js';

// Heavy in-process work (trainer workers over several lease periods): longer than the unit tier's 20-s default under load.
vi.setConfig({ testTimeout: 60_000 });

/**
 * Trainer workers hold the message they work on: its lease is extended on a timer (a short
 * visibility timeout here, and a slow data set load), the task is protected from scale-in
 * through the ECS agent endpoint (a fake one here), and a job another live trainer holds is
 * never dead-lettered.
 */
let dir: string;
let file: string;
let backend: string;

beforeAll(async () => {
  backend = await useTestBackend();
  ({ dir, file } = await smallA9a(400));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The queue, recording every delivery it hands out. */
function recording(queue: Queue, deliveries: QueueMessage[]): Queue {
  return Object.assign(Object.create(queue) as Queue, {
    async receive(options: Parameters<Queue['receive']>[0]) {
      const got = await queue.receive(options);
      deliveries.push(...got);
      return got;
    },
  });
}

const slowLoad =
  (delayMs: number): TrainerWorkerDeps['load'] =>
  async (spec) => {
    await sleep(delayMs);
    const inputs = await loadJobInputs(spec);
    return { ...inputs, oracle: new InProcessMetricOracle(inputs.evaluator) };
  };

describe('trainer worker leases', () => {
  it('keeps a message that outlives its first lease from a second worker and from the DLQ', async () => {
    const root = await mkdtemp(join(dir, 'lease-'));
    const store = new FsObjectStore(join(root, 'store'));
    // Long enough that a loaded machine's event-loop stalls (a chunk's synchronous tfjs work) stay
    // well inside one renewal period (a third of the lease).
    const visibilityTimeoutMs = 1500;
    const queues = [0, 1].map(() => new LocalQueue(join(root, 'queue'), { visibilityTimeoutMs, maxReceiveCount: 5 }));
    const spec = jobSpecSchema.parse({ ...tinyJob(file, 'lease-job'), fanOut: true });
    expect((await submitJob(spec, { store, queue: queues[0] as LocalQueue })).ok).toBe(true);

    const deliveries: QueueMessage[] = [];
    const logged: string[] = [];
    const summaries = await Promise.all(
      queues.map((q, i) =>
        runTrainerWorker({
          store,
          queue: recording(q, deliveries),
          // Each worker spends 3 leases loading the data set before its first chunk.
          load: slowLoad(3 * visibilityTimeoutMs),
          backend,
          progress: silentProgress,
          workerId: `w${i}`,
          idleExitMs: 4000,
          visibilityTimeoutMs,
          logger: jsonLinesLogger((line) => logged.push(JSON.parse(line).event)),
        }),
      ),
    );

    const status = await readJobStatus(store, 'lease-job');
    expect(status.ok && status.value.state).toBe('done');
    // 1 job + 3 chunks + 1 fit, each delivered once.
    expect(deliveries.map((m) => m.receiveCount)).toEqual([1, 1, 1, 1, 1]);
    expect(new Set(deliveries.map((m) => m.id)).size).toBe(5);
    expect(summaries.reduce((a, s) => a + s.handled, 0)).toBe(5);
    expect(await (queues[0] as LocalQueue).counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
    expect(logged).not.toContain('lease-lost');
    expect(logged).not.toContain('failed');
  });

  it('puts a job another live trainer holds (JOB_STATE_CONFLICT) back for later instead of dead-lettering it', async () => {
    const root = await mkdtemp(join(dir, 'conflict-'));
    const store = new FsObjectStore(join(root, 'store'));
    const queue = new LocalQueue(join(root, 'queue'), { visibilityTimeoutMs: 2000, maxReceiveCount: 5 });
    const spec = jobSpecSchema.parse({ ...tinyJob(file, 'conflict-job'), fanOut: true });
    await submitJob(spec, { store, queue });
    // Fan the job out, then answer every chunk with a conflict, as a second trainer would meet one.
    await runTrainerWorker({
      store,
      queue: Object.assign(Object.create(queue) as Queue, {
        receive: async (o: Parameters<Queue['receive']>[0]) => queue.receive({ ...o, max: 1 }),
      }),
      load: () => Promise.reject(new JobError('JOB_STATE_CONFLICT', 'another trainer wrote state 2 first')),
      backend,
      progress: silentProgress,
      workerId: 'w',
      idleExitMs: 500,
      visibilityTimeoutMs: 2000,
    });
    const counts = await queue.counts();
    expect(counts.deadLetters).toBe(0);
    // The three chunk messages wait out a lease before they come back.
    expect(counts.visible + counts.inFlight).toBe(3);
    const status = await readJobStatus(store, 'conflict-job');
    expect(status.ok && status.value.lastError?.code).toBe('JOB_STATE_CONFLICT');
  });

  it('dead-letters a job whose spec is invalid for good (JOB_STATE_INVALID) with the reason', async () => {
    const root = await mkdtemp(join(dir, 'poison-'));
    const store = new FsObjectStore(join(root, 'store'));
    const queue = new LocalQueue(join(root, 'queue'), { visibilityTimeoutMs: 2000, maxReceiveCount: 5 });
    const spec = jobSpecSchema.parse({ ...tinyJob(file, 'poison-job'), fanOut: true });
    await submitJob(spec, { store, queue });
    await runTrainerWorker({
      store,
      queue,
      load: () => Promise.reject(new JobError('JOB_STATE_INVALID', 'model differs from the job')),
      backend,
      progress: silentProgress,
      workerId: 'w',
      idleExitMs: 500,
    });
    const dead = await queue.listDeadLetters();
    expect(dead).toHaveLength(3);
    expect(dead.every((d) => d.reason?.startsWith('JOB_STATE_INVALID: '))).toBe(true);
  });
});

describe('trainer task scale-in protection (ECS agent endpoint)', () => {
  let server: Server;
  let agentUri: string;
  const calls: { seq: number; body: { ProtectionEnabled: boolean; ExpiresInMinutes?: number } }[] = [];
  /** Orders the agent's calls and the worker's acks without a clock. */
  let seq = 0;
  let refuse = false;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        if (req.method !== 'PUT' || req.url !== '/task-protection/v1/state') {
          res.writeHead(404).end();
          return;
        }
        const parsed = JSON.parse(body);
        calls.push({ seq: ++seq, body: parsed });
        res.writeHead(refuse ? 400 : 200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            refuse
              ? { error: { Code: 'AccessDeniedException', Message: 'no ecs:UpdateTaskProtection' } }
              : { protection: { ProtectionEnabled: parsed.ProtectionEnabled, TaskArn: 'arn:aws:ecs:task/x' } },
          ),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    agentUri = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('is set before the worker works on a message and cleared after it settled it', async () => {
    calls.length = 0;
    const root = await mkdtemp(join(dir, 'protect-'));
    const store = new FsObjectStore(join(root, 'store'));
    const queue = new LocalQueue(join(root, 'queue'), { visibilityTimeoutMs: 600 });
    const spec = jobSpecSchema.parse({ ...tinyJob(file, 'protect-job'), fanOut: true });
    await submitJob(spec, { store, queue });
    const settled: number[] = [];
    const watched = Object.assign(Object.create(queue) as Queue, {
      ack: async (r: string) => {
        await queue.ack(r);
        settled.push(++seq);
      },
    });
    await runTrainerWorker({
      store,
      queue: watched,
      load: slowLoad(800),
      backend,
      progress: silentProgress,
      workerId: 'w',
      idleExitMs: 1500,
      visibilityTimeoutMs: 600,
      protection: new EcsAgentTaskProtection(agentUri),
    });
    expect(settled).toHaveLength(5);
    const sets = calls.filter((c) => c.body.ProtectionEnabled);
    const clears = calls.filter((c) => !c.body.ProtectionEnabled);
    expect(clears).toHaveLength(5);
    // One protection per message (and renewals while it is held), each cleared after its ack.
    expect(calls[0]?.body.ProtectionEnabled).toBe(true);
    expect(calls.at(-1)?.body).toEqual({ ProtectionEnabled: false });
    expect(sets.length).toBeGreaterThan(5);
    expect(sets.every((c) => c.body.ExpiresInMinutes === 1)).toBe(true);
    for (const [i, at] of settled.entries()) {
      const clear = clears[i] as { seq: number };
      expect(clear.seq).toBeGreaterThan(at);
    }
    expect((await readJobStatus(store, 'protect-job')).ok).toBe(true);
  });

  it('throws the agent refusal with its status and message', async () => {
    refuse = true;
    try {
      await expect(new EcsAgentTaskProtection(agentUri).protect(30)).rejects.toThrow(
        /ECS task protection \(set\): HTTP 400 .*AccessDeniedException/,
      );
    } finally {
      refuse = false;
    }
    calls.length = 0;
    await new EcsAgentTaskProtection(agentUri).protect(5000);
    expect(calls[0]?.body).toEqual({ ProtectionEnabled: true, ExpiresInMinutes: 2880 });
  });
});
