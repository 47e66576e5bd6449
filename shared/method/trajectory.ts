import type { BalancedSampler } from '../data/sampler.js';
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

  /** The steps of the next chunk; the chunk counts as done once the iterator is exhausted. */
  private *chunkSteps(): Generator<number> {
    const { steps: T, batchSize: B } = this.config;
    const { d, phis, losses } = this.trajectories;
    const { start, end } = this.chunkRange(this.next);
    const m = end - start;
    const rng = this.seeding === 'per-chunk' ? new Rng(chunkSeed(this.config.seed, this.next)) : this.rng;
    const phi = rng.normals(m * d, this.config.phi0Std);
    const opt = new BatchedOptimizer(this.config.optimizer, this.config.learningRate, m * d);
    const rows = new Int32Array(m * B);
    const record = (t: number) => {
      for (let i = 0; i < m; i++) phis.set(phi.subarray(i * d, (i + 1) * d), ((start + i) * (T + 1) + t) * d);
    };
    record(0);
    let done = start * T;
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < m; i++) this.sampler.sampleInto(rng, rows, i * B, B);
      const { loss, grad } = this.model.lossAndGrad(phi, m, rows, B);
      opt.step(phi, grad);
      for (let i = 0; i < m; i++) losses[(start + i) * T + t] = loss[i] as number;
      record(t + 1);
      done += m;
      // The chunk is done before its last step is reported: a stop after it keeps the chunk.
      if (t === T - 1) this.next++;
      yield done;
    }
  }
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
