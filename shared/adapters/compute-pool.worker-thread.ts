import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SparseDataset } from '../data/dataset.js';
import type { TrajectoryChunkJob, TrajectoryChunkResult } from '../method/trajectory.js';
import type { MemberJob } from '../method/value-function-training.js';
import type { AdaptedModelSpec } from '../models/model-spec.js';
import type { ComputePool } from '../ports/compute-pool.port.js';
import type { DenseLayer } from '../schemas/checkpoint.js';

/** The default thread count: the cores this process may use. */
export const defaultThreads = (): number => availableParallelism();

/** Messages to a worker (compute-pool.worker.ts). */
export type PoolRequest =
  | { id: number; kind: 'load'; spec: AdaptedModelSpec }
  | { id: number; kind: 'chunk'; job: TrajectoryChunkJob }
  | { id: number; kind: 'member'; job: MemberJob }
  /**
   * `rows` travels once per worker: later requests name the set by `rowsId`, so the worker
   * passes the same array each time and the model's per-row-set cache (validation rows) holds.
   */
  | { id: number; kind: 'predict'; phis: Float32Array; n: number; rowsId: number; rows?: Int32Array | undefined };

/** A worker's answer to request `id`. */
export type PoolReply =
  | { id: number; ok: true; chunk?: TrajectoryChunkResult; scores?: Float32Array; layers?: DenseLayer[] }
  | { id: number; ok: false; message: string };

type Job = {
  request: PoolRequest;
  transfer: ArrayBuffer[];
  resolve: (r: PoolReply) => void;
  reject: (e: Error) => void;
};

interface Slot {
  worker: Worker;
  busy: Job | undefined;
  /** Row sets this worker holds. */
  rowSets: Set<number>;
  /** Ended by `release` (its exit is not a failure). */
  released: boolean;
}

/**
 * A ComputePool of `workers` worker threads, each with its own tfjs backend (the one named) and
 * its own copy of the data set. A job goes to the first idle worker; a failed job rejects with
 * the worker's message, and a worker that dies fails its job and every later one.
 */
export class WorkerThreadComputePool implements ComputePool {
  /** The running workers: none before the first job and after `release` (started on demand). */
  private slots: Slot[] = [];
  private readonly queue: Job[] = [];
  /** Jobs that must run on one particular worker (load). */
  private readonly queueFor = new Map<Job, Slot>();
  private nextId = 0;
  private readonly rowSetIds = new WeakMap<Int32Array, number>();
  private nextRowsId = 0;
  private failure: Error | undefined;
  /** The model of the current run, given again to workers started after a `release`. */
  private spec: AdaptedModelSpec | undefined;

  constructor(
    readonly workers: number,
    private readonly dataset: SparseDataset,
    private readonly backend: string,
  ) {
    if (!Number.isInteger(workers) || workers < 1)
      throw new Error(`compute pool: workers must be >= 1, got ${workers}`);
    workerUrl();
  }

  async load(spec: AdaptedModelSpec): Promise<void> {
    this.spec = spec;
    if (this.slots.length === 0) await this.start();
    else await Promise.all(this.slots.map((slot) => this.loadOn(slot, spec)));
  }

  /**
   * Ends the workers while nothing is queued or running (between stages: a demo's meta-test
   * and the next replicate's pre-training use none), so their heaps and tfjs memory are freed;
   * the next job starts them again, with the data set and the current model. A no-op while busy.
   */
  async release(): Promise<void> {
    if (this.queue.length > 0 || this.slots.some((s) => s.busy)) return;
    const slots = this.slots;
    this.slots = [];
    for (const slot of slots) slot.released = true;
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /** Starts the workers, each loading the current model (if any) before its first job. */
  private start(): Promise<void> {
    const url = workerUrl();
    this.slots = Array.from({ length: this.workers }, () => {
      // A young generation of 12 MB (V8's default is 48 MB): the same work, ~30 MB less resident
      // per worker (measured: npm start's peak RSS, bench/RESULTS.md).
      const worker = new Worker(url, {
        workerData: { dataset: this.dataset, backend: this.backend },
        resourceLimits: { maxYoungGenerationSizeMb: 12 },
      });
      const slot: Slot = { worker, busy: undefined, rowSets: new Set(), released: false };
      worker.on('message', (reply: PoolReply) => this.settle(slot, reply));
      worker.on('error', (e) => this.fail(e));
      worker.on('exit', (code) => {
        if (code !== 0 && !slot.released) this.fail(new Error(`compute pool worker exited with code ${code}`));
      });
      worker.unref();
      return slot;
    });
    const spec = this.spec;
    return spec
      ? Promise.all(this.slots.map((slot) => this.loadOn(slot, spec))).then(() => undefined)
      : Promise.resolve();
  }

  /** The model of `spec` on one worker, ahead of its queued jobs. */
  private loadOn(slot: Slot, spec: AdaptedModelSpec): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const job: Job = {
        request: { id: this.nextId++, kind: 'load', spec },
        transfer: [],
        resolve: (r) => (r.ok ? resolve() : reject(new Error(r.message))),
        reject,
      };
      this.queue.unshift(job);
      this.queueFor.set(job, slot);
      this.pump();
    });
  }

  async trajectoryChunk(job: TrajectoryChunkJob): Promise<TrajectoryChunkResult> {
    const reply = await this.submit({ id: this.nextId++, kind: 'chunk', job }, [
      job.phi0.buffer as ArrayBuffer,
      job.rows.buffer as ArrayBuffer,
    ]);
    if (!reply.chunk) throw new Error('compute pool: a chunk job came back without its result');
    return reply.chunk;
  }

  async predict(phis: Float32Array, n: number, rows: Int32Array): Promise<Float32Array> {
    let rowsId = this.rowSetIds.get(rows);
    if (rowsId === undefined) {
      rowsId = this.nextRowsId++;
      this.rowSetIds.set(rows, rowsId);
    }
    const reply = await this.submit({ id: this.nextId++, kind: 'predict', phis: phis.slice(), n, rowsId, rows }, []);
    if (!reply.scores) throw new Error('compute pool: a prediction came back without its scores');
    return reply.scores;
  }

  async trainMember(job: MemberJob): Promise<DenseLayer[]> {
    const reply = await this.submit({ id: this.nextId++, kind: 'member', job }, []);
    if (!reply.layers) throw new Error('compute pool: a value-function member came back without its layers');
    return reply.layers;
  }

  async close(): Promise<void> {
    this.fail(new Error('compute pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private submit(request: PoolRequest, transfer: ArrayBuffer[]): Promise<PoolReply & { ok: true }> {
    // A failed load fails the pool, and so this job.
    if (this.slots.length === 0 && !this.failure) this.start().catch((e) => this.fail(e));
    return new Promise((resolve, reject) => {
      this.queue.push({
        request,
        transfer,
        resolve: (r) => (r.ok ? resolve(r) : reject(new Error(`compute pool worker: ${r.message}`))),
        reject,
      });
      this.pump();
    });
  }

  private pump(): void {
    if (this.failure) {
      for (const job of this.queue.splice(0)) job.reject(this.failure);
      return;
    }
    for (const slot of this.slots) {
      if (slot.busy) continue;
      const i = this.queue.findIndex((j) => (this.queueFor.get(j) ?? slot) === slot);
      if (i < 0) continue;
      const [job] = this.queue.splice(i, 1) as [Job];
      this.queueFor.delete(job);
      slot.busy = job;
      slot.worker.ref();
      let request = job.request;
      if (request.kind === 'predict') {
        if (slot.rowSets.has(request.rowsId)) request = { ...request, rows: undefined };
        else slot.rowSets.add(request.rowsId);
      }
      slot.worker.postMessage(request, job.transfer);
    }
  }

  private settle(slot: Slot, reply: PoolReply): void {
    const job = slot.busy;
    slot.busy = undefined;
    slot.worker.unref();
    if (job && job.request.id === reply.id) job.resolve(reply);
    this.pump();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const slot of this.slots) {
      slot.busy?.reject(e);
      slot.busy = undefined;
    }
    this.pump();
  }
}

/**
 * The worker's compiled entry: beside this file when it runs from dist/, else (the tests run the
 * TypeScript sources) in dist/ of the repository, which `npm run build` writes.
 */
function workerUrl(): URL {
  const here = fileURLToPath(import.meta.url);
  const beside = join(dirname(here), 'compute-pool.worker.js');
  if (existsSync(beside)) return pathToFileURL(beside);
  const built = join(dirname(here), '..', '..', 'dist', 'shared', 'adapters', 'compute-pool.worker.js');
  if (existsSync(built)) return pathToFileURL(built);
  throw new Error(`compute pool: ${built} is missing; run \`npm run build\` first`);
}
