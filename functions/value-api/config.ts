import { type ValueApiEnv, valueApiEnvSchema } from '../../shared/schemas/value-api-config.js';
import { issueLines } from '../../shared/schemas/zod-issue.js';

/** Parses the environment or throws one line naming the first problem. */
export function parseValueApiEnv(env: Record<string, string | undefined>): ValueApiEnv {
  const parsed = valueApiEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`value-api config: ${issueLines(parsed.error)}`);
  }
  return parsed.data;
}
