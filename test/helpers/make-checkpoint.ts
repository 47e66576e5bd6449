import type { ValueFunctionCheckpoint } from '../../shared/schemas/checkpoint.js';
import { valueFunctionCheckpointSchema } from '../../shared/schemas/checkpoint.js';
import { Rng } from '../../shared/util/random.js';

export interface MakeCheckpointOptions {
  id?: string;
  d?: number;
  version?: number;
  /** Hidden widths; the paper's value function is d-64-32-32-16-1. */
  hidden?: number[];
  members?: number;
  seed?: number;
  metric?: { name: string; direction: 'minimize' | 'maximize' };
}

/**
 * A random but valid value-function checkpoint (He-initialised layers, non-trivial input and
 * target normalisation) for tests and benchmarks that must not depend on the training code.
 */
export function makeCheckpoint(options: MakeCheckpointOptions = {}): ValueFunctionCheckpoint {
  const d = options.d ?? 16;
  const hidden = options.hidden ?? [64, 32, 32, 16];
  const rng = new Rng(options.seed ?? 1);
  const widths = [d, ...hidden, 1];
  const members = Array.from({ length: options.members ?? 1 }, () => ({
    layers: widths.slice(0, -1).map((nin, i) => {
      const nout = widths[i + 1] as number;
      const std = Math.sqrt(2 / nin);
      return {
        in: nin,
        out: nout,
        weights: Array.from(rng.normals(nin * nout, std)),
        bias: Array.from(rng.normals(nout, 0.05)),
      };
    }),
  }));
  return valueFunctionCheckpointSchema.parse({
    format: 'metricopt.value-function',
    schemaVersion: 1,
    id: options.id ?? 'test-vf',
    version: options.version ?? 1,
    createdAt: '2026-11-27T00:00:00.000Z',
    libraryVersion: '0.1.0',
    d,
    metric: options.metric ?? { name: 'f1', direction: 'maximize' },
    recipe: 'tuned',
    dataset: 'a9a',
    adapter: { kind: 'input-bias', d },
    inputNormalisation: {
      mean: Array.from({ length: d }, () => rng.normal() * 0.1),
      std: Array.from({ length: d }, () => 0.5 + rng.next()),
    },
    targetNormalisation: { mean: 0.3, std: 0.05 },
    hiddenActivation: 'relu',
    embeddingLayer: hidden.length - 1,
    members,
    training: { tasks: 100, heldOutTasks: 10, heldOutMae: 0.01, constantMae: 0.02, spearman: 0.8 },
  });
}
