import { z } from 'zod';
import { checkpointIdSchema } from './checkpoint.js';
import { type TrainingOverrides, trainingOverridesSchema } from './run-config.js';

/**
 * A training job: what to train a value function on and with which settings, stored beside its
 * state in the object store (`jobs/<id>/job.json`) so a restarted trainer resumes the same job.
 * Every hyperparameter is here: a recipe (paper, tuned) resolved at the job's seed, then the
 * overrides, a deep partial of the training part of `RunConfig` (shared/schemas/run-config.ts).
 */
export const jobIdSchema = checkpointIdSchema;

const int = (min: number) => z.number().int().min(min);

export { type TrainingOverrides, trainingOverridesSchema };

/** Where the training rows come from: a bundled name (a9a, digits), a LIBSVM path, file:// or s3:// URL. */
export const datasetRefSchema = z
  .object({
    source: z.string().min(1, 'dataset.source is required (a9a, digits, a path or an s3:// location)'),
    features: int(1).optional(),
    positiveLabel: z.number().optional(),
    /** Per-row context for the evaluator (`--context`): a CSV or JSON-lines file, a path, file:// or s3:// URL. */
    context: z.string().min(1).optional(),
    /**
     * Feature column (0-based) whose non-zero rows form group 1: the context column `group`
     * (`--group-feature`; group-balanced-error and label noise read it).
     */
    groupFeature: int(0).optional(),
    /**
     * Where the trainer finds the fetched image sets (`metricopt data fetch fashion-mnist`): a
     * folder path or file:// URL on the trainer's machine. Absent: its METRICOPT_DATA_DIR, else
     * `.cache/data` in the package.
     */
    dataDir: z.string().min(1).optional(),
  })
  .strict();

/** A built-in metric by name, or a user evaluator module (default export { name, direction, evaluate }). */
export const metricRefSchema = z.union([
  z.object({ builtin: z.string().min(1) }).strict(),
  z.object({ module: z.string().min(1) }).strict(),
]);

export const jobSpecSchema = z
  .object({
    format: z.literal('metricopt.job'),
    schemaVersion: z.literal(1),
    id: jobIdSchema,
    dataset: datasetRefSchema,
    metric: metricRefSchema,
    recipe: z.enum(['paper', 'tuned']).default('tuned'),
    /** Base seed: split, pre-training, trajectories and value-function training derive from it. */
    seed: int(0).default(1),
    overrides: trainingOverridesSchema.default({}),
    output: z.object({ valueFunctionId: checkpointIdSchema }).strict(),
    /**
     * Fan the trajectory chunks out as task messages on the jobs queue (`metricopt train --queue`,
     * the ECS trainer service): each chunk then draws its own random stream from the seed and its
     * index, so any worker computes any chunk and the result does not depend on how many there are.
     */
    fanOut: z.boolean().default(false),
    checkpoint: z
      .object({
        /**
         * Trajectory tasks advanced in lockstep and checkpointed together. It is part of the random
         * stream (phi_0 of a chunk is drawn when the chunk starts): 200 reproduces `demo`.
         */
        chunkTasks: int(1).default(200),
        /** Metric queries are sent in batches of this many; the job state is written after each batch. */
        queryBatch: int(1).default(48),
      })
      .strict()
      .default({ chunkTasks: 200, queryBatch: 48 }),
  })
  .strict();
/** The job as written (defaults may be omitted). */
export type JobSpecInput = z.input<typeof jobSpecSchema>;
export type JobSpec = z.output<typeof jobSpecSchema>;

export const jobStageSchema = z.enum(['pretrain', 'trajectories', 'observations', 'fit', 'done']);
export type JobStage = z.infer<typeof jobStageSchema>;

const rngStateSchema = z.object({ s: int(0).max(0xffffffff), spare: z.number().nullable() }).strict();

const failureSchema = z.object({ taskId: int(0), step: int(0), code: z.string(), message: z.string() }).strict();

/**
 * A training job's resumable state, written atomically as `jobs/<id>/state/<seq>.json` with a
 * conditional create (the highest seq is current; a writer that loses the race stops). The
 * trajectories of finished chunks live beside it as `jobs/<id>/trajectories/<chunk>.f32`.
 */
export const jobStateSchema = z
  .object({
    format: z.literal('metricopt.job-state'),
    schemaVersion: z.literal(1),
    jobId: jobIdSchema,
    seq: int(1),
    updatedAt: z.string(),
    /** The stage to run next. */
    stage: jobStageSchema,
    /** Hash of the pre-trained model's validation predictions: a resume must rebuild the same model. */
    modelFingerprint: z.string().nullable(),
    trajectories: z
      .object({
        tasks: int(0),
        chunkTasks: int(1),
        chunksDone: int(0),
        tasksDone: int(0),
        /** The random stream at the boundary after `chunksDone` chunks. */
        rng: rngStateSchema.nullable(),
      })
      .strict(),
    observations: z
      .object({
        /** Metric requests answered so far (in request order), of `total`. */
        done: int(0),
        total: int(0),
        /** Per task, its [step, normalised value] observations. */
        perTask: z.array(z.array(z.tuple([int(0), z.number()]))),
        failures: z.array(failureSchema),
      })
      .strict(),
    valueFunction: z
      .object({ id: checkpointIdSchema, version: int(1), createdAt: z.string() })
      .strict()
      .nullable(),
    /** The value function's held-out figures, once fitted. */
    heldOut: z
      .object({
        mae: z.number().nullable(),
        constantMae: z.number().nullable(),
        spearman: z.number().nullable(),
        observations: int(0),
      })
      .strict()
      .nullable(),
  })
  .strict();
export type JobState = z.infer<typeof jobStateSchema>;

/** The human-facing status document `jobs/<id>/status.json` (`metricopt jobs status`, GET /v1/jobs/{id}). */
export const jobStatusSchema = z
  .object({
    format: z.literal('metricopt.job-status'),
    schemaVersion: z.literal(1),
    jobId: jobIdSchema,
    state: z.enum(['running', 'interrupted', 'done', 'failed', 'cancelled']),
    stage: jobStageSchema,
    /** Steps of the current stage (a fit: its training steps), rewritten as it runs. */
    progress: z
      .object({ done: int(0), total: int(0) })
      .strict()
      .optional(),
    /**
     * The runner's lease: it rewrites the document before this time while it runs. A `running`
     * job past it has lost its runner (killed) and is shown as `stalled` until started again.
     */
    leaseExpiresAt: z.string().optional(),
    tasks: z.object({ done: int(0), total: int(0) }).strict(),
    evaluations: z.object({ total: int(0), sent: int(0), returned: int(0), failed: int(0) }).strict(),
    heldOut: z
      .object({
        mae: z.number().nullable(),
        constantMae: z.number().nullable(),
        spearman: z.number().nullable(),
        observations: int(0),
        /** Held-out Spearman at least HEALTHY_SPEARMAN (0.7); null without one (absent in older documents). */
        healthy: z.boolean().nullable().optional(),
      })
      .strict()
      .nullable(),
    /** Seconds left in the current stage at this run's pace (null before there is a pace). */
    etaSeconds: z.number().nullable(),
    backend: z.string(),
    lastError: z.object({ code: z.string(), message: z.string() }).strict().nullable(),
    valueFunction: z
      .object({ id: checkpointIdSchema, version: int(1) })
      .strict()
      .nullable(),
    startedAt: z.string(),
    updatedAt: z.string(),
  })
  .strict()
  .meta({ id: 'JobStatus', description: 'A training job: its state, stage, progress, held-out figures and ETA.' });
export type JobStatus = z.infer<typeof jobStatusSchema>;

/**
 * A status document as GET /v1/jobs/{id} answers it: the stored document, with the state a
 * client should act on (storage/job-documents.ts, shownJobState).
 */
export const jobStatusResponseSchema = jobStatusSchema
  .extend({
    state: z.enum(['running', 'stalled', 'interrupted', 'done', 'failed', 'cancelled']).meta({
      description:
        'As stored, except `stalled`: stored as running, but its lease (leaseExpiresAt) has passed, so its runner is gone (killed); running the job again (metricopt train --job-id ID, or the jobs queue redelivering it) resumes it.',
    }),
  })
  .meta({
    id: 'JobStatusResponse',
    description:
      'A training job: its state (stalled once its runner stops renewing its lease), stage, progress, held-out figures and ETA.',
  });
export type JobStatusResponse = z.infer<typeof jobStatusResponseSchema>;

/**
 * A fit job (bring your own model, issue 12): a value function fitted to observations that a
 * remote training loop recorded (shared/schemas/observations.ts), stored as JSON-lines batches
 * under `observations.prefix` (default `jobs/<id>/observations/`). No data set, no pre-training:
 * the metric values come with the observations, or are scored from uploaded predictions by a
 * registered evaluator when the fit runs (shared/use-cases/byom/fit-inputs.ts). Its status document is the
 * same `jobs/<id>/status.json` (jobStatusSchema); the runner is `runFitJob`
 * (shared/use-cases/byom/fit-observations.ts). A worker tells the two kinds apart by `format`.
 */
export const fitJobSpecSchema = z
  .object({
    format: z.literal('metricopt.fit-job'),
    schemaVersion: z.literal(1),
    id: jobIdSchema,
    observations: z
      .object({ prefix: z.string().min(1).optional() })
      .strict()
      .default({}),
    metric: z
      .object({
        name: z.string().min(1).max(64).default('metric'),
        direction: z.enum(['minimize', 'maximize']),
      })
      .strict(),
    recipe: z.enum(['paper', 'tuned']).default('tuned'),
    seed: int(0).default(1),
    /** Value-function training settings over the recipe's (trajectory settings do not apply). */
    overrides: z.object({ metaTrain: trainingOverridesSchema.shape.metaTrain }).strict().partial().default({}),
    output: z.object({ valueFunctionId: checkpointIdSchema }).strict(),
  })
  .strict();
export type FitJobSpecInput = z.input<typeof fitJobSpecSchema>;
export type FitJobSpec = z.output<typeof fitJobSpecSchema>;

/**
 * A message on the jobs queue. `job`: start (or resume) the stored job `jobs/<id>/job.json`;
 * a fan-out job turns into one `chunk` message per trajectory chunk, and the worker that commits
 * the last chunk sends `fit`. Delivery is at least once: every handler is idempotent.
 */
export const jobMessageSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('job'), jobId: jobIdSchema }).strict(),
  z.object({ kind: z.literal('chunk'), jobId: jobIdSchema, chunk: int(0) }).strict(),
  z.object({ kind: z.literal('fit'), jobId: jobIdSchema }).strict(),
]);
export type JobMessage = z.infer<typeof jobMessageSchema>;

/**
 * A fanned-out chunk's committed result, `jobs/<id>/tasks/<chunk>.json` (a conditional create:
 * the first worker to finish the chunk commits it; its trajectories are `tasks/<chunk>.f32`).
 */
export const chunkResultSchema = z
  .object({
    format: z.literal('metricopt.job-chunk'),
    schemaVersion: z.literal(1),
    jobId: jobIdSchema,
    chunk: int(0),
    tasks: z.object({ start: int(0), end: int(0) }).strict(),
    /** Per task of the chunk, its [step, normalised value] observations. */
    perTask: z.array(z.array(z.tuple([int(0), z.number()]))),
    sent: int(0),
    failures: z.array(failureSchema),
    worker: z.string(),
    seconds: z.number().min(0),
  })
  .strict();
export type ChunkResult = z.infer<typeof chunkResultSchema>;
