import { z } from 'zod';
import { objectStoreEnv, positiveInt } from '../shared/schemas/env.js';
import { issueLines } from '../shared/schemas/zod-issue.js';

/**
 * The training container's configuration, parsed once at start-up from the environment.
 * - METRICOPT_STORE: the object store (s3://bucket/prefix or a folder) for job state and checkpoints (required)
 * - METRICOPT_JOB: the job spec's location: a path, file:// URL or s3://bucket/key; or
 * - METRICOPT_JOB_ID: the id of a job already stored under METRICOPT_STORE (resume)
 * - METRICOPT_JOBS_QUEUE (+ METRICOPT_JOBS_DLQ for SQS): or run as a trainer worker on the jobs
 *   queue (the ECS trainer service): job, chunk and fit messages until SIGTERM or METRICOPT_IDLE_EXIT_S
 * - METRICOPT_JOBS_VISIBILITY_S: the lease on a held job message (default 900): it stays hidden this
 *   long, extended every third of it while the worker works on it; a killed worker's comes back within it
 * - ECS_AGENT_URI (set by ECS): the trainer protects its task from scale-in while it holds a message
 * - METRICOPT_EVALUATION_QUEUE (+ METRICOPT_EVALUATION_DLQ for SQS): metric queries go through the
 *   evaluation queue (the evaluator functions answer them); absent, the job's evaluator runs in-process
 * - METRICOPT_BACKEND: auto (default: tensorflow, then webgpu, wasm, cpu, whichever loads first) or one of them
 * - METRICOPT_S3_ENDPOINT, METRICOPT_S3_FORCE_PATH_STYLE (LocalStack, MinIO)
 * - METRICOPT_DATA_DIR: the fetched image sets' folder for jobs whose spec names no `dataset.dataDir`
 */
export const trainTaskEnvSchema = z
  .object({
    METRICOPT_STORE: z.string({ error: 'METRICOPT_STORE is required' }).min(1, 'METRICOPT_STORE is required'),
    METRICOPT_JOB: z.string().min(1).optional(),
    METRICOPT_JOB_ID: z.string().min(1).optional(),
    METRICOPT_DATA_DIR: z.string().min(1).optional(),
    METRICOPT_JOBS_QUEUE: z.string().min(1).optional(),
    METRICOPT_JOBS_DLQ: z.url({ error: 'METRICOPT_JOBS_DLQ must be a URL' }).optional(),
    METRICOPT_EVALUATION_QUEUE: z.string().min(1).optional(),
    METRICOPT_EVALUATION_DLQ: z.url({ error: 'METRICOPT_EVALUATION_DLQ must be a URL' }).optional(),
    /** How long a job message the worker holds stays hidden from the others (a killed worker's comes back after it). */
    METRICOPT_JOBS_VISIBILITY_S: positiveInt('METRICOPT_JOBS_VISIBILITY_S', 900),
    ECS_AGENT_URI: z.url({ error: 'ECS_AGENT_URI must be a URL' }).optional(),
    METRICOPT_IDLE_EXIT_S: z.coerce
      .number({ error: 'METRICOPT_IDLE_EXIT_S must be a positive number' })
      .positive('METRICOPT_IDLE_EXIT_S must be a positive number')
      .optional(),
    METRICOPT_BACKEND: z
      .enum(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'], {
        error: 'METRICOPT_BACKEND must be one of auto, tensorflow, webgpu, wasm, cpu',
      })
      .default('auto'),
    ...objectStoreEnv,
  })
  .refine(
    (e) => e.METRICOPT_JOB !== undefined || e.METRICOPT_JOB_ID !== undefined || e.METRICOPT_JOBS_QUEUE !== undefined,
    {
      message:
        'METRICOPT_JOB (the job spec location), METRICOPT_JOB_ID (a stored job) or METRICOPT_JOBS_QUEUE (run as a trainer worker) is required',
    },
  );
export type TrainTaskEnv = z.infer<typeof trainTaskEnvSchema>;

/** Parses the environment or throws one line naming the first problem. */
export function parseTrainTaskEnv(env: Record<string, string | undefined>): TrainTaskEnv {
  const parsed = trainTaskEnvSchema.safeParse(env);
  if (!parsed.success) throw new Error(`train task config: ${issueLines(parsed.error)}`);
  return parsed.data;
}

/** The order backends are tried in under METRICOPT_BACKEND=auto. */
export const BACKEND_ORDER = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
