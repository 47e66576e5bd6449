import { z } from 'zod';
import { objectStoreEnv } from '../shared/schemas/env.js';

/**
 * The training container's configuration, parsed once at start-up from the environment.
 * - METRICOPT_STORE: the object store (s3://bucket/prefix or a folder) for job state and checkpoints (required)
 * - METRICOPT_JOB: the job spec's location: a path, file:// URL or s3://bucket/key; or
 * - METRICOPT_JOB_ID: the id of a job already stored under METRICOPT_STORE (resume)
 * - METRICOPT_BACKEND: auto (default: tensorflow, then webgpu, wasm, cpu, whichever loads first) or one of them
 * - METRICOPT_S3_ENDPOINT, METRICOPT_S3_FORCE_PATH_STYLE (LocalStack, MinIO)
 */
export const trainTaskEnvSchema = z
  .object({
    METRICOPT_STORE: z.string({ error: 'METRICOPT_STORE is required' }).min(1, 'METRICOPT_STORE is required'),
    METRICOPT_JOB: z.string().min(1).optional(),
    METRICOPT_JOB_ID: z.string().min(1).optional(),
    METRICOPT_BACKEND: z
      .enum(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'], {
        error: 'METRICOPT_BACKEND must be one of auto, tensorflow, webgpu, wasm, cpu',
      })
      .default('auto'),
    ...objectStoreEnv,
  })
  .refine((e) => e.METRICOPT_JOB !== undefined || e.METRICOPT_JOB_ID !== undefined, {
    message: 'METRICOPT_JOB (the job spec location) or METRICOPT_JOB_ID (a stored job) is required',
  });
export type TrainTaskEnv = z.infer<typeof trainTaskEnvSchema>;

/** Parses the environment or throws one line naming the first problem. */
export function parseTrainTaskEnv(env: Record<string, string | undefined>): TrainTaskEnv {
  const parsed = trainTaskEnvSchema.safeParse(env);
  if (!parsed.success) throw new Error(`train task config: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  return parsed.data;
}

/** The order backends are tried in under METRICOPT_BACKEND=auto. */
export const BACKEND_ORDER = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
