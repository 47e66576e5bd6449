import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { SparseDataset } from '../../data/dataset.js';
import type { TrajectoryConfig } from '../../method/trajectory.js';
import type { AdaptedModelSpec } from '../../models/model-spec.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { RngState } from '../../util/random.js';
import { LIBRARY_VERSION } from '../../version.js';
import type { RunConfig } from './recipes.js';

/**
 * Work that does not depend on the metric, kept by a hash of everything that decides its bits,
 * so that runs on the same data, split and seeds (the metrics of one data set in the efficacy
 * matrix) pre-train and fine-tune once: the frozen backbone, and the loss-only trajectories.
 * A missing, unreadable or foreign entry is a miss (the work is done again), never an error.
 */
export interface RunCache {
  store: ObjectStore;
  /** The tfjs backend: another backend's kernels give other bits. */
  backend: string;
}

/** sha256 of the data set, the training rows, the backbone's config, the backend and the library version. */
export function pretrainKey(
  ds: SparseDataset,
  trainRows: Int32Array,
  cfg: Pick<RunConfig, 'architecture' | 'model' | 'pretrain' | 'convnet'>,
  backend: string,
): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([LIBRARY_VERSION, backend, ds.name, ds.rows, ds.features, ds.classes]));
  for (const a of [ds.indptr, ds.indices, ds.values, ds.labels, trainRows]) {
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  h.update(JSON.stringify([cfg.architecture, cfg.model, cfg.pretrain, ...(cfg.convnet ? [cfg.convnet] : [])]));
  // The context adapter's term reads the context columns: other columns, other trajectories.
  if (cfg.model.adapter.kind === 'input-bias' && cfg.model.adapter.logitFeatures === 'context') {
    for (const name of Object.keys(ds.context ?? {}).sort()) {
      const col = ds.context?.[name] as Float64Array;
      h.update(JSON.stringify(name));
      h.update(new Uint8Array(col.buffer, col.byteOffset, col.byteLength));
    }
  }
  return h.digest('hex');
}

/** The trajectories' key: the model's key, their config, chunking and seeding. */
export function trajectoriesKey(modelKey: string, cfg: TrajectoryConfig, chunkTasks: number, seeding: string): string {
  return createHash('sha256')
    .update(JSON.stringify([modelKey, cfg, chunkTasks, seeding]))
    .digest('hex');
}

const f32 = z.array(z.number()).transform((a) => Float32Array.from(a));
const weights = z.object({ w: f32, b: f32 });
const specSchema = z.discriminatedUnion('architecture', [
  z.object({
    architecture: z.literal('mlp'),
    frozen: z.object({
      inputs: z.number(),
      classes: z.number(),
      leakyAlpha: z.number(),
      layers: z.array(z.object({ in: z.number(), out: z.number(), w: f32, b: f32 })),
      adapter: z.discriminatedUnion('kind', [
        z.object({
          kind: z.literal('input-bias'),
          d: z.number(),
          a: f32,
          outputBias: z.number(),
          // The low-rank adapter's rank (issue 19): without it a cached low-rank backbone came
          // back as an input-bias one whose d counted u, and failed at its first prediction.
          logitRank: z.number().int().optional(),
          logitColumns: z.array(z.string()).optional(),
        }),
        z.object({ kind: z.literal('film'), layer: z.number(), d: z.number() }),
      ]),
    }),
  }),
  z.object({
    architecture: z.literal('convnet'),
    frozen: z.object({
      config: z.object({
        side: z.number(),
        channels: z.tuple([z.number(), z.number()]),
        leakyAlpha: z.number(),
        pool: z.boolean().optional(),
        inputScale: z.number().optional(),
      }),
      classes: z.number(),
      conv1: weights,
      conv2: weights,
      dense: weights,
    }),
  }),
]);
const pretrainedSchema = z.object({
  format: z.literal('metricopt.pretrained'),
  schemaVersion: z.literal(1),
  key: z.string(),
  spec: specSchema,
});

const toJson = (v: unknown) =>
  JSON.stringify(v, (_k, x) => (ArrayBuffer.isView(x) ? Array.from(x as Float32Array) : x));

/** The cached backbone of `key` (float32 values round-trip exactly through JSON), or undefined. */
export async function loadPretrained(cache: RunCache, key: string): Promise<AdaptedModelSpec | undefined> {
  const bytes = await cache.store.get(`pretrained/${key}.json`);
  if (!bytes) return undefined;
  try {
    const doc = pretrainedSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
    return doc.success && doc.data.key === key ? (doc.data.spec as AdaptedModelSpec) : undefined;
  } catch {
    return undefined;
  }
}

export async function savePretrained(cache: RunCache, key: string, spec: AdaptedModelSpec): Promise<void> {
  await cache.store.put(
    `pretrained/${key}.json`,
    toJson({ format: 'metricopt.pretrained', schemaVersion: 1, key, spec }),
  );
}

const trajectoriesSchema = z.object({
  format: z.literal('metricopt.trajectories'),
  schemaVersion: z.literal(1),
  key: z.string(),
  chunks: z.number().int().nonnegative(),
  /** Bytes of each chunk in the .bin file, in order (TrajectoryGenerator.chunkBytes). */
  chunkBytes: z.array(z.number().int().nonnegative()),
  rng: z.object({ s: z.number(), spare: z.number().nullable() }),
});

/** Cached trajectory chunks (bytes as TrajectoryGenerator.chunkBytes gives them) and the stream after them. */
export interface CachedTrajectories {
  chunks: Uint8Array[];
  rng: RngState;
}

export async function loadTrajectories(cache: RunCache, key: string): Promise<CachedTrajectories | undefined> {
  const [meta, bin] = await Promise.all([
    cache.store.get(`trajectories/${key}.json`),
    cache.store.get(`trajectories/${key}.bin`),
  ]);
  if (!meta || !bin) return undefined;
  try {
    const doc = trajectoriesSchema.safeParse(JSON.parse(new TextDecoder().decode(meta)));
    if (!doc.success || doc.data.key !== key) return undefined;
    const sizes = doc.data.chunkBytes;
    if (sizes.length !== doc.data.chunks || sizes.reduce((a, b) => a + b, 0) !== bin.byteLength) return undefined;
    let at = 0;
    const chunks = sizes.map((n) => {
      const c = bin.subarray(at, at + n);
      at += n;
      return c;
    });
    return { chunks, rng: doc.data.rng };
  } catch {
    return undefined;
  }
}

export async function saveTrajectories(cache: RunCache, key: string, value: CachedTrajectories): Promise<void> {
  const bin = new Uint8Array(value.chunks.reduce((a, c) => a + c.byteLength, 0));
  let at = 0;
  for (const c of value.chunks) {
    bin.set(c, at);
    at += c.byteLength;
  }
  await cache.store.put(`trajectories/${key}.bin`, bin);
  await cache.store.put(
    `trajectories/${key}.json`,
    JSON.stringify({
      format: 'metricopt.trajectories',
      schemaVersion: 1,
      key,
      chunks: value.chunks.length,
      chunkBytes: value.chunks.map((c) => c.byteLength),
      rng: value.rng,
    }),
  );
}
