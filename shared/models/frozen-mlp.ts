import * as tf from '@tensorflow/tfjs';
import type { SparseDataset } from '../data/dataset.js';
import { type AdaptedModel, perTaskLossAndGrad } from './adapted-model.js';
import { contextLogitFeatures, LOW_RANK_SCALE, lowRankFeatures } from './low-rank-logit.js';
import { type FrozenMlp, OUTPUT_BIAS_SCALE, sigmoidCe } from './mlp.js';

/**
 * Upper bound on floats in one batched cached-layer activation, to keep memory flat (each
 * worker thread of a compute pool holds its own; a phi's scores do not depend on the chunking).
 */
const CHUNK_FLOATS = 1_000_000;

/**
 * The frozen MLP with its adapter, batched over tasks. Everything below the first layer phi
 * touches is frozen, so it is computed once for every row and gathered per batch: the first
 * layer's pre-activations X W1 + b1 (sparse rows x dense W1, in plain JS, BatchNorm folded) for
 * the input-bias adapter, and for FiLM on hidden layer l the pre-activations of layer l. Each
 * fine-tuning step and metric query then costs only the layers above, for all tasks in one set
 * of kernels (`uncachedLogits` in test/core/model.test.ts is the whole network, the reference).
 */
export class FrozenMlpModel implements AdaptedModel {
  readonly d: number;
  readonly classes: number;
  readonly adapterKind: 'input-bias' | 'film' | 'low-rank' | 'context';
  readonly logitShift?: { index: number; count: number; scale: number };
  /**
   * Pre-activations of hidden layer `cachedLayer` for every row (rows x h1), kept in JS:
   * gathering rows here beats tf.gather by far.
   */
  private readonly p0: Float32Array;
  /** The first hidden layer phi touches: 0 for input biases, the FiLM layer for FiLM. */
  private readonly cachedLayer: number;
  /** P0 of fixed row sets (validation, test) as tensors, built once per row set. */
  private readonly rowSetCache = new WeakMap<Int32Array, tf.Tensor2D>();
  private readonly cachedTensors: tf.Tensor[] = [];
  private readonly h1: number;
  private readonly a: tf.Tensor2D | undefined;
  private readonly w: tf.Tensor2D[];
  private readonly b: tf.Tensor1D[];
  private readonly labels: Int32Array;
  private readonly outUnits: number;
  /** Trailing entries of phi added to the logits (input-bias adapter with output biases). */
  private readonly outputBias: number;
  /** Rank of the low-rank input-to-logit term (0 = none) and its per-row features s (rows x rank). */
  private readonly rank: number;
  private readonly lowRank: Float32Array | undefined;
  private readonly lowRankCache = new WeakMap<Int32Array, tf.Tensor2D>();

  constructor(
    readonly frozen: FrozenMlp,
    ds: SparseDataset,
  ) {
    this.classes = frozen.classes;
    this.rank = frozen.adapter.kind === 'input-bias' ? (frozen.adapter.logitRank ?? 0) : 0;
    const columns = frozen.adapter.kind === 'input-bias' ? frozen.adapter.logitColumns : undefined;
    this.adapterKind = columns ? 'context' : this.rank > 0 ? 'low-rank' : frozen.adapter.kind;
    this.lowRank = columns
      ? contextLogitFeatures(ds, columns)
      : this.rank > 0
        ? lowRankFeatures(ds, this.rank)
        : undefined;
    this.d = frozen.adapter.d;
    this.labels = ds.labels;
    const first = frozen.layers[0];
    if (!first) throw new Error('FrozenMlpModel: no layers');
    this.outputBias = frozen.adapter.kind === 'input-bias' ? frozen.adapter.outputBias : 0;
    if (this.outputBias > 0) {
      this.logitShift = { index: this.d - this.outputBias, count: this.outputBias, scale: OUTPUT_BIAS_SCALE };
    }
    this.a =
      frozen.adapter.kind === 'input-bias'
        ? tf.tensor2d(frozen.adapter.a, [this.d - this.outputBias - this.rank, first.out])
        : undefined;
    this.w = frozen.layers.slice(1).map((l) => tf.tensor2d(l.w, [l.in, l.out]));
    this.b = frozen.layers.slice(1).map((l) => tf.tensor1d(l.b));
    this.cachedLayer = frozen.adapter.kind === 'film' ? frozen.adapter.layer : 0;
    this.h1 = frozen.layers[this.cachedLayer]?.out as number;
    this.p0 = this.frozenPreactivations(firstLayerPreactivations(ds, first.w, first.b, first.out));
    this.outUnits = frozen.layers[frozen.layers.length - 1]?.out ?? 1;
  }

  /**
   * From the first layer's pre-activations to those of `cachedLayer`, for every row: the same
   * kernels as a step's forward pass, a block of rows at a time (each row's result does not
   * depend on the rows beside it).
   */
  private frozenPreactivations(p: Float32Array): Float32Array {
    if (this.cachedLayer === 0) return p;
    const first = this.frozen.layers[0]?.out as number;
    const rows = p.length / first;
    const out = new Float32Array(rows * this.h1);
    const block = 4096;
    for (let r0 = 0; r0 < rows; r0 += block) {
      const n = Math.min(block, rows - r0);
      const z = tf.tidy(() => {
        let h = tf.tensor2d(p.subarray(r0 * first, (r0 + n) * first), [n, first]);
        for (let i = 1; i <= this.cachedLayer; i++) {
          h = tf.leakyRelu(h, this.frozen.leakyAlpha);
          h = tf.add(tf.matMul(h, this.w[i - 1] as tf.Tensor2D), this.b[i - 1] as tf.Tensor1D);
        }
        return h.dataSync() as Float32Array;
      });
      out.set(z, r0 * this.h1);
    }
    return out;
  }

  /** Cached pre-activations of the given rows, copied out of the cache ([rows, h1]). */
  private gatherRows(rows: Int32Array): tf.Tensor2D {
    const h = this.h1;
    const out = new Float32Array(rows.length * h);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as number;
      out.set(this.p0.subarray(r * h, (r + 1) * h), i * h);
    }
    return tf.tensor2d(out, [rows.length, h]);
  }

  /** The low-rank term's features of the given rows ([rows, rank]); cached per fixed row set when `keep`. */
  private lowRankRows(rows: Int32Array, keep: boolean): tf.Tensor2D {
    const cached = keep ? this.lowRankCache.get(rows) : undefined;
    if (cached) return cached;
    const r = this.rank;
    const s = this.lowRank as Float32Array;
    const out = new Float32Array(rows.length * r);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as number;
      out.set(s.subarray(row * r, (row + 1) * r), i * r);
    }
    const t = tf.tensor2d(out, [rows.length, r]);
    if (keep) {
      tf.keep(t);
      this.lowRankCache.set(rows, t);
      this.cachedTensors.push(t);
    }
    return t;
  }

  private rowSet(rows: Int32Array): tf.Tensor2D {
    let t = this.rowSetCache.get(rows);
    if (!t) {
      t = tf.keep(this.gatherRows(rows));
      this.rowSetCache.set(rows, t);
      this.cachedTensors.push(t);
    }
    return t;
  }

  /**
   * Logits [n, batch, outUnits]. `first` holds cached pre-activations either per task
   * ([n * batch, h1], task i on rows i*batch..) or shared by all tasks ([batch, h1]).
   */
  private logits(
    phi: tf.Tensor2D,
    first: tf.Tensor2D,
    shared: boolean,
    n: number,
    batch: number,
    lowRank?: tf.Tensor2D,
  ): tf.Tensor3D {
    const hidden = this.frozen.layers.length - 1;
    let z = tf.reshape(first, [shared ? 1 : n, batch, this.h1]) as tf.Tensor3D;
    const dIn = this.d - this.outputBias - this.rank;
    const phiIn = dIn < this.d ? tf.slice(phi, [0, 0], [n, dIn]) : phi;
    if (this.a) z = tf.add(z, tf.reshape(tf.matMul(phiIn, this.a), [n, 1, this.h1]));
    else if (shared) z = tf.tile(z, [n, 1, 1]);
    let width = this.h1;
    for (let i = this.cachedLayer; i < hidden; i++) {
      if (i > this.cachedLayer) {
        const layer = i - 1;
        const flat = tf.matMul(tf.reshape(z, [n * batch, width]), this.w[layer] as tf.Tensor2D);
        width = this.frozen.layers[i]?.out as number;
        z = tf.reshape(tf.add(flat, this.b[layer] as tf.Tensor1D), [n, batch, width]);
      }
      if (this.frozen.adapter.kind === 'film' && this.frozen.adapter.layer === i) {
        const g = tf.reshape(tf.slice(phi, [0, 0], [n, width]), [n, 1, width]);
        const s = tf.reshape(tf.slice(phi, [0, width], [n, width]), [n, 1, width]);
        z = tf.add(tf.mul(z, tf.add(g, 1)), s);
      }
      z = tf.leakyRelu(z, this.frozen.leakyAlpha);
    }
    const out = tf.add(
      tf.matMul(tf.reshape(z, [n * batch, width]), this.w[hidden - 1] as tf.Tensor2D),
      this.b[hidden - 1] as tf.Tensor1D,
    );
    let logits = tf.reshape(out, [n, batch, this.outUnits]) as tf.Tensor3D;
    if (this.rank > 0 && lowRank) {
      // u . s_row for each task and row: [n, rank] x [rank, batch] when the rows are shared,
      // else each task's own rows ([n, batch, rank] times u broadcast over the rows).
      const u = tf.slice(phi, [0, dIn], [n, this.rank]);
      const term = shared
        ? tf.matMul(u, lowRank, false, true)
        : tf.sum(tf.mul(tf.reshape(lowRank, [n, batch, this.rank]), tf.reshape(u, [n, 1, this.rank])), 2);
      logits = tf.add(logits, tf.reshape(tf.mul(term, LOW_RANK_SCALE), [n, batch, 1]));
    }
    if (this.outputBias === 0) return logits;
    const shift = tf.mul(tf.slice(phi, [0, this.d - this.outputBias], [n, this.outputBias]), OUTPUT_BIAS_SCALE);
    return tf.add(logits, tf.reshape(shift, [n, 1, this.outUnits]));
  }

  private perTaskLoss(
    phi: tf.Tensor2D,
    first: tf.Tensor2D,
    labels: tf.Tensor1D,
    n: number,
    batch: number,
    lowRank?: tf.Tensor2D,
  ): tf.Tensor1D {
    const logits = this.logits(phi, first, false, n, batch, lowRank);
    if (this.classes === 2) {
      return tf.mean(tf.reshape(sigmoidCe(tf.reshape(logits, [n * batch]), labels), [n, batch]), 1) as tf.Tensor1D;
    }
    const logp = tf.logSoftmax(tf.reshape(logits, [n * batch, this.outUnits]));
    const picked = tf.sum(tf.mul(logp, tf.oneHot(labels, this.classes)), 1);
    return tf.neg(tf.mean(tf.reshape(picked, [n, batch]), 1)) as tf.Tensor1D;
  }

  private labelTensor(rows: Int32Array): tf.Tensor1D {
    return tf.tensor1d(
      Int32Array.from(rows, (r) => this.labels[r] as number),
      'int32',
    );
  }

  lossAndGrad(
    phis: Float32Array,
    n: number,
    rows: Int32Array,
    batch: number,
  ): { loss: Float32Array; grad: Float32Array } {
    return tf.tidy(() => {
      const first = this.gatherRows(rows);
      const labels = this.labelTensor(rows);
      const s = this.rank > 0 ? this.lowRankRows(rows, false) : undefined;
      return perTaskLossAndGrad(phis, n, this.d, (phi) => this.perTaskLoss(phi, first, labels, n, batch, s));
    });
  }

  loss(phis: Float32Array, n: number, rows: Int32Array, batch: number): Float32Array {
    return tf.tidy(() => {
      const phi = tf.tensor2d(phis, [n, this.d]);
      const s = this.rank > 0 ? this.lowRankRows(rows, false) : undefined;
      return this.perTaskLoss(
        phi,
        this.gatherRows(rows),
        this.labelTensor(rows),
        n,
        batch,
        s,
      ).dataSync() as Float32Array;
    });
  }

  predict(phis: Float32Array, n: number, rows: Int32Array): Float32Array {
    const per = rows.length * (this.classes === 2 ? 1 : this.classes);
    const out = new Float32Array(n * per);
    const chunk = Math.max(1, Math.floor(CHUNK_FLOATS / Math.max(1, rows.length * this.h1)));
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      const scores = tf.tidy(() => {
        const phi = tf.tensor2d(phis.subarray(start * this.d, (start + m) * this.d), [m, this.d]);
        const s = this.rank > 0 ? this.lowRankRows(rows, true) : undefined;
        const logits = this.logits(phi, this.rowSet(rows), true, m, rows.length, s);
        return (this.classes === 2 ? tf.sigmoid(logits) : tf.softmax(logits)).dataSync() as Float32Array;
      });
      out.set(scores, start * per);
    }
    return out;
  }

  dispose(): void {
    for (const t of this.cachedTensors) t.dispose();
    this.a?.dispose();
    for (const t of [...this.w, ...this.b]) t.dispose();
  }
}

/** X W1 + b1 for every row, from the sparse rows directly (rows x out, row-major). */
export function firstLayerPreactivations(
  ds: SparseDataset,
  w: Float32Array,
  b: Float32Array,
  out: number,
): Float32Array {
  const p0 = new Float32Array(ds.rows * out);
  for (let r = 0; r < ds.rows; r++) {
    const base = r * out;
    p0.set(b, base);
    const end = ds.indptr[r + 1] as number;
    for (let p = ds.indptr[r] as number; p < end; p++) {
      const col = ds.indices[p] as number;
      const v = ds.values[p] as number;
      const wrow = col * out;
      for (let j = 0; j < out; j++) p0[base + j] = (p0[base + j] as number) + v * (w[wrow + j] as number);
    }
  }
  return p0;
}
