import { z } from 'zod';
import { objectStoreEnv } from '../shared/schemas/env.js';
import { CliError } from './errors.js';
import { issueLines } from '../shared/schemas/zod-issue.js';

/** Every environment variable the CLI reads; a flag given on the command line wins over its variable. */
export const cliEnvSchema = z.object({
  /** The tfjs backend when --backend is absent. */
  METRICOPT_BACKEND: z
    .enum(['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'], {
      error: 'METRICOPT_BACKEND must be one of auto, tensorflow, wasm, cpu, webgpu',
    })
    .default('auto'),
  /** Stack traces of unexpected errors. */
  METRICOPT_DEBUG: z
    .string()
    .optional()
    .transform((v) => v !== undefined && v !== '' && v !== '0' && v !== 'false'),
  /** `evaluate`: the webhook evaluators (JSON) when --webhooks is absent, and their HMAC key. */
  METRICOPT_WEBHOOKS: z.string().optional(),
  METRICOPT_WEBHOOK_SECRET: z.string().optional(),
  /** `serve`: accepted API keys (comma-separated entries) when no --api-key-hash is given. */
  METRICOPT_API_KEY_HASHES: z.string().default(''),
  /** `serve` (fit jobs to the trainer service) and `train --queue`: the jobs queue and its DLQ. */
  METRICOPT_JOBS_QUEUE: z.string().min(1).optional(),
  METRICOPT_JOBS_DLQ: z.string().min(1).optional(),
  /** The data cache folder of fetched image sets (`metricopt data fetch`). */
  METRICOPT_DATA_DIR: z.string().optional(),
  ...objectStoreEnv,
});
export type CliEnv = z.infer<typeof cliEnvSchema>;

let parsed: CliEnv | undefined;

/**
 * The CLI's environment, parsed once per run (`main` starts each run afresh); a bad value is a
 * CONFIG error naming the variable, raised by the first command that reads the environment.
 */
export function cliEnv(): CliEnv {
  if (parsed === undefined) {
    const r = cliEnvSchema.safeParse(process.env);
    if (!r.success) throw new CliError('CONFIG', issueLines(r.error));
    parsed = r.data;
  }
  return parsed;
}

/** Forgets the parsed environment: the next `cliEnv()` reads it again (each `main` run). */
export function resetCliEnv(): void {
  parsed = undefined;
}
