/**
 * The storage layout: every object-store key MetricOpt reads or writes is built here, and only
 * here. Two prefixes, with different lifetimes (lib/constructs/artifact-store.ts imports them for
 * its lifecycle rules):
 *
 *   value-functions/<id>/v000001.json       a checkpoint version (the product, kept)
 *   value-functions/<id>/owner.json         who owns the id (the value API's fit jobs)
 *   jobs/<id>/job.json                      the job spec (training job or fit job)
 *   jobs/<id>/status.json                   the status document, rewritten as the job runs
 *   jobs/<id>/result.json                   the fitted content, stashed before it is saved once
 *   jobs/<id>/state/<seq>.json              a training job's journal (conditional creates)
 *   jobs/<id>/trajectories/<chunk>.f32      a training job's trajectory chunks
 *   jobs/<id>/tasks/<chunk>.json|.f32       a fanned-out job's committed chunks
 *   jobs/<id>/{fanned-out,fit-requested,model}.json   a fanned-out job's markers
 *   jobs/<id>/observations/<seq>.jsonl      a fit job's observation batches
 *   jobs/<id>/inputs/...                    a fit job's labels and predictions
 *   jobs/<id>/{owner,started,cancel}.json   a fit job's owner, start and cancel markers
 *   jobs/<id>/results|claims|predictions|splits/...   the evaluation queue's documents
 *
 * Stored formats never change here without a migration: existing stores must keep loading.
 */

/** Value-function checkpoints: kept. */
export const CHECKPOINT_PREFIX = 'value-functions/';
/** Everything a job keeps: scratch, expires. */
export const JOBS_PREFIX = 'jobs/';

/** The prefixes of the store, for the bucket's lifecycle rules. */
export const STORE_PREFIXES = { checkpoints: CHECKPOINT_PREFIX, jobs: JOBS_PREFIX } as const;

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** A checkpoint version's key. */
export const checkpointKey = (id: string, version: number): string =>
  `${CHECKPOINT_PREFIX}${id}/v${pad(version, 6)}.json`;

/** The id and version of a checkpoint key; undefined for any other key under the prefix. */
export function parseCheckpointKey(key: string): { id: string; version: number } | undefined {
  const m = /^value-functions\/([^/]+)\/v(\d+)\.json$/.exec(key);
  return m ? { id: m[1] as string, version: Number(m[2]) } : undefined;
}

/** Who owns a value-function id. */
export const valueFunctionOwnerKey = (id: string): string => `${CHECKPOINT_PREFIX}${id}/owner.json`;

/** The keys of one job. */
export const jobKeys = (id: string) => {
  const job = `${JOBS_PREFIX}${id}/`;
  return {
    /** Everything of the job. */
    prefix: job,
    spec: `${job}job.json`,
    status: `${job}status.json`,
    result: `${job}result.json`,
    statePrefix: `${job}state/`,
    state: (seq: number) => `${job}state/${pad(seq, 8)}.json`,
    chunk: (c: number) => `${job}trajectories/${pad(c, 6)}.f32`,
    // A fanned-out training job (trainer workers).
    tasksPrefix: `${job}tasks/`,
    taskRecord: (c: number) => `${job}tasks/${pad(c, 6)}.json`,
    taskBytes: (c: number) => `${job}tasks/${pad(c, 6)}.f32`,
    fanned: `${job}fanned-out.json`,
    fitRequested: `${job}fit-requested.json`,
    model: `${job}model.json`,
    // A fit job (bring your own model).
    observationsPrefix: `${job}observations/`,
    labels: `${job}inputs/labels.json`,
    predictionsPrefix: `${job}inputs/predictions/`,
    predictions: (key: string) => `${job}inputs/predictions/${key}.f32`,
    owner: `${job}owner.json`,
    started: `${job}started.json`,
    cancel: `${job}cancel.json`,
  };
};

/** An observation batch under a fit job's observations prefix. */
export const observationBatchKey = (prefix: string, seq: number): string => `${prefix}${pad(seq, 8)}.jsonl`;

// The evaluation queue's documents of a job (the metric queries of a training job or a fit).
export const resultKey = (jobId: string, idempotencyKey: string): string =>
  `${JOBS_PREFIX}${jobId}/results/${idempotencyKey}.json`;
export const claimKey = (jobId: string, idempotencyKey: string): string =>
  `${JOBS_PREFIX}${jobId}/claims/${idempotencyKey}.json`;
/** Keyed like the result: two queries at the same task and step with different scores never collide. */
export const predictionsKey = (jobId: string, idempotencyKey: string): string =>
  `${JOBS_PREFIX}${jobId}/predictions/${idempotencyKey}.f32`;
/** A query's embeddings (float32, n x dim), beside its predictions: they change with phi like the scores. */
export const embeddingsKey = (jobId: string, idempotencyKey: string): string =>
  `${JOBS_PREFIX}${jobId}/predictions/${idempotencyKey}.emb.f32`;
/**
 * A split's labels, rows and context, content-addressed within the job (`version` is a hash of
 * the bytes), so a key's bytes never change and workers may cache them; re-registering a split
 * with other labels makes a new key.
 */
export const labelsKey = (jobId: string, split: string, version: string): string =>
  `${JOBS_PREFIX}${jobId}/splits/${split}.${version}.labels`;
export const rowsKey = (jobId: string, split: string, version: string): string =>
  `${JOBS_PREFIX}${jobId}/splits/${split}.${version}.rows`;
export const contextKey = (jobId: string, split: string, version: string): string =>
  `${JOBS_PREFIX}${jobId}/splits/${split}.${version}.context`;
