import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { MetricError } from '../metrics/errors.js';
import type { Evaluator } from '../ports/evaluator.port.js';
import { err, ok, type Result } from '../util/result.js';
import { issueLine } from '../schemas/zod-issue.js';

const evaluatorShape = z.object({
  name: z.string().min(1),
  direction: z.enum(['minimize', 'maximize']),
  version: z.string().optional(),
  outputs: z.array(z.enum(['probabilities', 'embedding'])).optional(),
  evaluate: z.custom<Evaluator['evaluate']>((v) => typeof v === 'function', 'evaluate must be a function'),
});

/** The import URL of a module path (a URL as given, else the file URL of the path). */
export function moduleUrl(path: string): string {
  return /^[a-z]+:/i.test(path) && !/^[a-z]:[\\/]/i.test(path) ? path : pathToFileURL(path).href;
}

/**
 * Loads a user evaluator module (`--evaluator ./my-metric.mjs`): its default export must be
 * `{ name, direction: 'minimize' | 'maximize', evaluate({ scores, labels, classes, rows, context }) }`
 * (`rows` and `context`: shared/metrics/evaluator.ts).
 */
export async function loadEvaluatorModule(path: string): Promise<Result<Evaluator, MetricError>> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(moduleUrl(path))) as Record<string, unknown>;
  } catch (e) {
    const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return err(
      new MetricError('EVALUATOR_MODULE_INVALID', `evaluator module '${path}' could not be loaded: ${message}`),
    );
  }
  const parsed = evaluatorShape.safeParse(mod.default);
  if (!parsed.success) {
    return err(
      new MetricError(
        'EVALUATOR_MODULE_INVALID',
        `evaluator module '${path}': ${issueLine(parsed.error, 'default export')} (expected a default export { name, direction, evaluate })`,
      ),
    );
  }
  const e = mod.default as Evaluator;
  return ok(e);
}
