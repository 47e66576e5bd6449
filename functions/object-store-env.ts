import { z } from 'zod';

/** Environment fields every function that reaches the object store shares (S3 endpoint override, path-style). */
export const objectStoreEnv = {
  METRICOPT_S3_ENDPOINT: z.url({ error: 'METRICOPT_S3_ENDPOINT must be a URL' }).optional(),
  METRICOPT_S3_FORCE_PATH_STYLE: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
};
