import type { BalancedSampler, Sampler } from '../data/sampler.js';
import type { AdaptedModel } from '../models/adapted-model.js';
import type { ProgressReporter } from '../ports/progress.port.js';
import { Rng, type RngState } from '../util/random.js';
import { BatchedOptimizer, type OptimizerKind } from './optimizers.js';

/**
 * Stage 1: loss-only fine-tuning runs of phi ("tasks"), each from a random phi_0 with random
 * mini-batches, T steps of SGD or Adam. All tasks of a chunk advance in lockstep so one set of
 * kernels serves them all.
 */
export interface TrajectoryConfig {
  tasks: number;
  steps: number;
  batchSize: number;
  optimizer: OptimizerKind;
  learningRate: number;
  /** Std of phi_0 ~ N(0, s^2 I) (METHOD.md: 1; at 0.5 the metric barely moves). */
  phi0Std: number;
  /** Metric observations per task, K >= 2, always including t = 0 and t = T. */
  queries: number;
  seed: number;
}

export interface Trajectories {
  n: number;
  T: number;
  d: number;
  /** Row-major [n][T + 1][d]. */
  phis: Float32Array;
  /** Mini-batch loss at each step [n][T] (the loss of the step that left phi_t). */
  losses: Float32Array;
  /** Per task, the sorted steps at which the metric is observed. */
  querySteps: number[][];
}

/** The K observation steps of one task: t = 0, t = T and K - 2 distinct random steps between. */
export function chooseQuerySteps(rng: Rng, T: number, K: number): number[] {
  const inner = rng.sampleDistinct(1, T, Math.max(0, Math.min(K, T + 1) - 2));
  return [...new Set([0, ...inner, T])].sort((a, b) => a - b);
}

export function generateTrajectories(
  model: AdaptedModel,
  sampler: BalancedSampler,
  config: TrajectoryConfig,
  progress: ProgressReporter,
  chunkTasks = 200,
): Trajectories {
  const gen = new TrajectoryGenerator(model, sampler, config, chunkTasks);
  progress.start('trajectories (loss-only fine-tuning)', gen.totalSteps);
  while (!gen.finished) gen.runChunk((done) => progress.tick(done));
  progress.end();
  return gen.trajectories;
}

/**
 * Trajectory generation one chunk at a time, so that a long run can be checkpointed between
 * chunks and resumed: the state between chunks is the chunks done (their phis and losses) and
 * the random stream. Generating all chunks in one go, or resuming after any of them from
 * `restore`, gives the same bits.
 */
export class TrajectoryGenerator {
  readonly trajectories: Trajectories;
  readonly chunkTasks: number;
  private rng: Rng;
  private next = 0;

  constructor(
    private readonly model: AdaptedModel,
    private readonly sampler: BalancedSampler,
    private readonly config: TrajectoryConfig,
    chunkTasks = 200,
    /**
     * `stream`: one random stream through all chunks (phi_0 of a chunk is drawn when it starts);
     * `per-chunk`: chunk c draws from its own stream, seeded by the seed and c, so chunks can be
     * computed in any order by any worker.
     */
    private readonly seeding: 'stream' | 'per-chunk' = 'stream',
  ) {
    const { tasks: n, steps: T } = config;
    const d = model.d;
    this.chunkTasks = Math.max(1, Math.floor(chunkTasks));
    this.rng = new Rng(config.seed);
    const querySteps: number[][] = [];
    for (let i = 0; i < n; i++) querySteps.push(chooseQuerySteps(this.rng, T, config.queries));
    this.trajectories = {
      n,
      T,
      d,
      phis: new Float32Array(n * (T + 1) * d),
      losses: new Float32Array(n * T),
      querySteps,
    };
  }

  get chunks(): number {
    return Math.ceil(this.config.tasks / this.chunkTasks);
  }
  get chunksDone(): number {
    return this.next;
  }
  get tasksDone(): number {
    return Math.min(this.config.tasks, this.next * this.chunkTasks);
  }
  get totalSteps(): number {
    return this.config.tasks * this.config.steps;
  }
  get finished(): boolean {
    return this.next >= this.chunks;
  }
  /** Tasks [start, end) of chunk c. */
  chunkRange(c: number): { start: number; end: number } {
    const start = c * this.chunkTasks;
    return { start, end: Math.min(this.config.tasks, start + this.chunkTasks) };
  }
  rngState(): RngState {
    return this.rng.state();
  }

  /** Continues after `chunksDone` chunks whose phis and losses are already in `trajectories`. */
  restore(chunksDone: number, rng: RngState): void {
    if (chunksDone < 0 || chunksDone > this.chunks)
      throw new Error(`TrajectoryGenerator: bad chunk count ${chunksDone}`);
    this.next = chunksDone;
    this.rng = Rng.fromState(rng);
  }

  /** Chunk c's phis then losses, float32 little-endian (what a checkpoint stores). */
  chunkBytes(c: number): Uint8Array {
    const { T, d, phis, losses } = this.trajectories;
    const { start, end } = this.chunkRange(c);
    const p = phis.subarray(start * (T + 1) * d, end * (T + 1) * d);
    const l = losses.subarray(start * T, end * T);
    const out = new Uint8Array(p.byteLength + l.byteLength);
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), 0);
    out.set(new Uint8Array(l.buffer, l.byteOffset, l.byteLength), p.byteLength);
    return out;
  }

  /** Puts chunk c's stored bytes back; false when they are not the chunk's size. */
  setChunkBytes(c: number, bytes: Uint8Array): boolean {
    const { T, d, phis, losses } = this.trajectories;
    const { start, end } = this.chunkRange(c);
    const nPhi = (end - start) * (T + 1) * d;
    if (bytes.byteLength !== (nPhi + (end - start) * T) * 4) return false;
    const copy = new Uint8Array(bytes);
    phis.set(new Float32Array(copy.buffer, 0, nPhi), start * (T + 1) * d);
    losses.set(new Float32Array(copy.buffer, nPhi * 4, (end - start) * T), start * T);
    return true;
  }

  /** Runs the next chunk; `onStep(doneSteps)` follows every step. */
  runChunk(onStep: (done: number) => void = () => undefined): void {
    for (const done of this.chunkSteps()) onStep(done);
  }

  /**
   * The next chunk, yielding to the event loop after every step (signals get handled). When
   * `stop()` turns true the chunk is abandoned and the generator stays at the last chunk
   * boundary, its random stream untouched; returns whether the chunk completed.
   */
  async runChunkAsync(stop: () => boolean, onStep: (done: number) => void = () => undefined): Promise<boolean> {
    const saved = this.rng.state();
    const before = this.next;
    for (const done of this.chunkSteps()) {
      onStep(done);
      await new Promise<void>((r) => setImmediate(r));
      if (stop() && this.next === before) {
        this.rng = Rng.fromState(saved);
        return false;
      }
    }
    return true;
  }

  /**
   * Runs the next chunk with a compute pool's help: its random draws are taken here, in the
   * stream's order, then its tasks are split between this thread and the pool's workers (a
   * task's steps do not depend on the tasks beside it), so the bits are those of `runChunk`.
   * Returns the steps done.
   */
  async runChunkOn(pool: TrajectoryPool): Promise<number> {
    const { T, d, phis, losses } = this.trajectories;
    const { start, end } = this.chunkRange(this.next);
    const m = end - start;
    const rng = this.seeding === 'per-chunk' ? new Rng(chunkSeed(this.config.seed, this.next)) : this.rng;
    const plan = drawChunkPlan(rng, this.sampler, m, d, this.config);
    const parts = Math.max(1, Math.min(pool.workers + 1, m));
    const B = this.config.batchSize;
    const job = (p: number): TrajectoryChunkJob => {
      const a = Math.floor((p * m) / parts);
      const b = Math.floor(((p + 1) * m) / parts);
      const rows = new Int32Array(T * (b - a) * B);
      for (let t = 0; t < T; t++) rows.set(plan.rows.subarray((t * m + a) * B, (t * m + b) * B), t * (b - a) * B);
      return {
        phi0: plan.phi0.slice(a * d, b * d),
        rows,
        m: b - a,
        T,
        batch: B,
        optimizer: this.config.optimizer,
        learningRate: this.config.learningRate,
      };
    };
    // The workers' shares go out first; this thread computes the first share meanwhile.
    const away = Array.from({ length: parts - 1 }, (_, p) => pool.trajectoryChunk(job(p + 1)));
    const here = runTrajectoryChunkJob(this.model, job(0));
    const results = [here, ...(await Promise.all(away))];
    results.forEach((r, p) => {
      const a = start + Math.floor((p * m) / parts);
      phis.set(r.phis, a * (T + 1) * d);
      losses.set(r.losses, a * T);
    });
    this.next++;
    return end * T;
  }

  /** The steps of the next chunk; the chunk counts as done once the iterator is exhausted. */
  private *chunkSteps(): Generator<number> {
    const { T, d, phis, losses } = this.trajectories;
    const { start, end } = this.chunkRange(this.next);
    const m = end - start;
    const rng = this.seeding === 'per-chunk' ? new Rng(chunkSeed(this.config.seed, this.next)) : this.rng;
    const plan = drawChunkPlan(rng, this.sampler, m, d, this.config);
    const outPhis = phis.subarray(start * (T + 1) * d, end * (T + 1) * d);
    const outLosses = losses.subarray(start * T, end * T);
    let done = start * T;
    for (const t of trajectoryChunkSteps(this.model, plan, this.config, outPhis, outLosses)) {
      done += m;
      // The chunk is done before its last step is reported: a stop after it keeps the chunk.
      if (t === T - 1) this.next++;
      yield done;
    }
  }
}

/** A chunk's random draws, taken up front: phi_0 of each task, then every step's mini-batches. */
export interface ChunkPlan {
  m: number;
  /** [m][d] */
  phi0: Float32Array;
  /** [T][m][batch] row ids: step t, task i on rows[(t * m + i) * batch ..]. */
  rows: Int32Array;
}

/**
 * Draws chunk's phi_0 and all its mini-batches from `rng`, in the order the step loop used to
 * draw them (phi_0, then step by step, task by task), so the stream is the same.
 */
export function drawChunkPlan(
  rng: Rng,
  sampler: Sampler,
  m: number,
  d: number,
  config: Pick<TrajectoryConfig, 'steps' | 'batchSize' | 'phi0Std'>,
): ChunkPlan {
  const { steps: T, batchSize: B } = config;
  const phi0 = rng.normals(m * d, config.phi0Std);
  const rows = new Int32Array(T * m * B);
  for (let t = 0; t < T; t++) for (let i = 0; i < m; i++) sampler.sampleInto(rng, rows, (t * m + i) * B, B);
  return { m, phi0, rows };
}

/**
 * The loss-only fine-tuning of one planned chunk, step by step (yields t after step t): phis
 * [m][T + 1][d] and losses [m][T] are written into `outPhis` / `outLosses`. The same function
 * runs in this thread and in a compute pool's workers.
 */
export function* trajectoryChunkSteps(
  model: Pick<AdaptedModel, 'd' | 'lossAndGrad'>,
  plan: ChunkPlan,
  config: Pick<TrajectoryConfig, 'steps' | 'batchSize' | 'optimizer' | 'learningRate'>,
  outPhis: Float32Array,
  outLosses: Float32Array,
): Generator<number> {
  const { steps: T, batchSize: B } = config;
  const { m } = plan;
  const d = model.d;
  const phi = Float32Array.from(plan.phi0);
  const opt = new BatchedOptimizer(config.optimizer, config.learningRate, m * d);
  const record = (t: number) => {
    for (let i = 0; i < m; i++) outPhis.set(phi.subarray(i * d, (i + 1) * d), (i * (T + 1) + t) * d);
  };
  record(0);
  for (let t = 0; t < T; t++) {
    const rows = plan.rows.subarray(t * m * B, (t + 1) * m * B);
    const { loss, grad } = model.lossAndGrad(phi, m, rows, B);
    opt.step(phi, grad);
    for (let i = 0; i < m; i++) outLosses[i * T + t] = loss[i] as number;
    record(t + 1);
    yield t;
  }
}

/** One chunk of loss-only fine-tuning for a compute pool (plain data: it crosses threads). */
export interface TrajectoryChunkJob {
  phi0: Float32Array;
  rows: Int32Array;
  m: number;
  T: number;
  batch: number;
  optimizer: OptimizerKind;
  learningRate: number;
}

/** The chunk's phis [m][T + 1][d] and losses [m][T]. */
export interface TrajectoryChunkResult {
  phis: Float32Array;
  losses: Float32Array;
}

/** Runs a chunk job on a model (what a pool's worker does). */
export function runTrajectoryChunkJob(
  model: Pick<AdaptedModel, 'd' | 'lossAndGrad'>,
  job: TrajectoryChunkJob,
): TrajectoryChunkResult {
  const phis = new Float32Array(job.m * (job.T + 1) * model.d);
  const losses = new Float32Array(job.m * job.T);
  const config = { steps: job.T, batchSize: job.batch, optimizer: job.optimizer, learningRate: job.learningRate };
  for (const _ of trajectoryChunkSteps(model, { m: job.m, phi0: job.phi0, rows: job.rows }, config, phis, losses));
  return { phis, losses };
}

/** What trajectory generation needs of a compute pool (shared/ports/compute-pool.port.ts). */
export interface TrajectoryPool {
  /** Worker threads beside this one. */
  readonly workers: number;
  trajectoryChunk(job: TrajectoryChunkJob): Promise<TrajectoryChunkResult>;
}

/** The seed of chunk c's own random stream (per-chunk seeding). */
export function chunkSeed(seed: number, chunk: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(chunk + 1, 0x85ebca6b)) >>> 0;
}

/** phi of task i at step t (a view). */
export function phiAt(traj: Trajectories, task: number, step: number): Float32Array {
  const off = (task * (traj.T + 1) + step) * traj.d;
  return traj.phis.subarray(off, off + traj.d);
}
