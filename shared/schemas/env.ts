import { z } from 'zod';
/** Environment settings shared by the entry points (Lambdas, container, CLI), parsed once at start-up. */

/** An environment variable holding a positive integer, with a default; the message names the variable. */
export const positiveInt = (name: string, fallback: number) =>
  z.coerce
    .number({ error: `${name} must be a positive integer` })
    .int(`${name} must be a positive integer`)
    .positive(`${name} must be a positive integer`)
    .default(fallback);

/** Environment fields every function that reaches the object store shares (S3 endpoint override, path-style). */
export const objectStoreEnv = {
  METRICOPT_S3_ENDPOINT: z.url({ error: 'METRICOPT_S3_ENDPOINT must be a URL' }).optional(),
  METRICOPT_S3_FORCE_PATH_STYLE: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
};
