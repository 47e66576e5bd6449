import type { EvaluatorSpec, WebhookEvaluatorSpec } from '../schemas/evaluation.js';
import { err, ok, type Result } from '../util/result.js';
import { builtinEvaluators } from './builtins.js';
import { MetricError } from './errors.js';
import type { Evaluator, EvaluatorListing, EvaluatorRegistry } from '../ports/evaluator.port.js';
import { builtinEvaluator } from './registry.js';

/**
 * Where configured evaluators come from: adapters that load code or talk to the network
 * (shared/adapters/evaluator-module.*.ts, evaluator.webhook.ts), chosen by the entry point.
 */
export interface RegistryDeps {
  /** Loads a user evaluator module (in a worker thread, or in process). */
  loadModule: (path: string) => Promise<Result<Evaluator, MetricError>>;
  /** The evaluator of a configured webhook. */
  webhook: (spec: WebhookEvaluatorSpec) => Evaluator;
}

/**
 * Builds the registry once per process: modules are imported here (not per message). A
 * configured name may not repeat or shadow a built-in, so a name always means one metric.
 */
export async function createEvaluatorRegistry(
  specs: readonly EvaluatorSpec[],
  deps: RegistryDeps,
): Promise<Result<EvaluatorRegistry, MetricError>> {
  const configured = new Map<string, { evaluator: Evaluator; listing: EvaluatorListing }>();
  const builtinNames = new Set(builtinEvaluators.map((e) => e.name));
  for (const spec of specs) {
    let evaluator: Evaluator;
    let listing: EvaluatorListing;
    if (spec.kind === 'builtin') {
      const found = builtinEvaluator(spec.name);
      if (!found.ok) return found;
      continue; // built-ins are always available; naming one only checks it exists
    }
    if (spec.kind === 'module') {
      const loaded = await deps.loadModule(spec.path);
      if (!loaded.ok) return loaded;
      evaluator = loaded.value;
      listing = { name: evaluator.name, kind: 'module', direction: evaluator.direction, source: spec.path };
    } else {
      evaluator = deps.webhook(spec);
      listing = { name: spec.name, kind: 'webhook', direction: spec.direction, source: spec.url };
    }
    if (evaluator.version !== undefined) listing.version = evaluator.version;
    if (evaluator.outputs !== undefined) listing.outputs = evaluator.outputs;
    const clash = configured.get(evaluator.name);
    if (clash || builtinNames.has(evaluator.name) || builtinEvaluator(evaluator.name).ok) {
      const other = clash ? `${clash.listing.kind} ${clash.listing.source}` : 'a built-in evaluator';
      return err(
        new MetricError(
          'EVALUATOR_MODULE_INVALID',
          `evaluator registry: the name '${evaluator.name}' of ${listing.kind} ${listing.source} is taken by ${other}`,
          { name: evaluator.name },
        ),
      );
    }
    configured.set(evaluator.name, { evaluator, listing });
  }
  return ok({
    list: () => [
      ...builtinEvaluators.map(
        (e): EvaluatorListing => ({
          name: e.name,
          kind: 'builtin',
          direction: e.direction,
          ...(e.outputs === undefined ? {} : { outputs: e.outputs }),
        }),
      ),
      ...[...configured.values()].map((c) => c.listing),
    ],
    resolve: (name) => {
      const found = configured.get(name);
      if (found) return ok(found.evaluator);
      const builtin = builtinEvaluator(name);
      if (builtin.ok) return builtin;
      const names = [...builtinNames, ...configured.keys()].join(', ');
      return err(new MetricError('UNKNOWN_METRIC', `unknown evaluator '${name}' (available: ${names})`, { name }));
    },
  });
}
