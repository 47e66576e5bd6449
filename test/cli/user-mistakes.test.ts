import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatError } from '../../cli/errors.js';
import type { Sampler } from '../../shared/data/sampler.js';
import { mcr } from '../../shared/metrics/builtins.js';
import type { AdaptedModel } from '../../shared/models/adapted-model.js';
import type { MetricOracle } from '../../shared/ports/metric-oracle.port.js';
import { silentProgress } from '../../shared/ports/progress.port.js';
import { metaTestSeed } from '../../shared/use-cases/training/meta-test.js';
import { fitValueFunction } from '../../shared/use-cases/training/meta-train.js';
import { tunedRecipe } from '../../shared/use-cases/training/recipes.js';
import { err } from '../../shared/util/result.js';
import { MetricError } from '../../shared/metrics/errors.js';
import { runCli as run } from '../helpers/cli.js';
import { smallA9a } from '../jobs/fixtures.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** One line, `metricopt: error [CODE]: ...`, no stack trace. */
function expectOneLine(stderr: string, code: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^metricopt: error \\[${code}\\]: `));
  return lines[0] as string;
}

describe('user mistakes in the model options', () => {
  let dir: string;
  let small: string;

  beforeAll(async () => {
    ({ dir, file: small } = await smallA9a(600));
  });

  it('ends an out-of-range --film-layer with FILM_LAYER_OUT_OF_RANGE, exit 1', async () => {
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--adapter',
      'film',
      '--film-layer',
      '7',
      '--out',
      join(dir, 'o'),
    ]);
    expect(r.code).toBe(1);
    expect(expectOneLine(r.stderr, 'FILM_LAYER_OUT_OF_RANGE')).toContain('--film-layer 7 is not a hidden layer');
  });

  it('ends the ConvNet on non-image data with CONVNET_NEEDS_IMAGES, exit 1', async () => {
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--features',
      '123',
      '--architecture',
      'convnet',
      '--backend',
      'wasm',
      '--out',
      join(dir, 'o'),
    ]);
    expect(r.code).toBe(1);
    expect(expectOneLine(r.stderr, 'CONVNET_NEEDS_IMAGES')).toContain('has 123 features');
  });

  it('ends --adapter context on a metric with no context columns with CONTEXT_ADAPTER_NO_CONTEXT, exit 1', async () => {
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--features',
      '123',
      '--adapter',
      'context',
      '--out',
      join(dir, 'o'),
    ]);
    expect(r.code).toBe(1);
    expect(expectOneLine(r.stderr, 'CONTEXT_ADAPTER_NO_CONTEXT')).toContain('--context FILE');
  });

  it('refuses --adapter-rank without --adapter low-rank (USAGE) rather than ignore it', async () => {
    const r = await run([
      'demo',
      '--dataset',
      small,
      '--adapter',
      'context',
      '--adapter-rank',
      '4',
      '--out',
      join(dir, 'o'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--adapter-rank is the rank of --adapter low-rank');
  });
});

describe('expected failures of meta-training and meta-test', () => {
  it('meta-training with fewer than two observed tasks is META_TRAIN_NO_DATA, a one-line error', async () => {
    const recipe = tunedRecipe(1);
    const result = await fitValueFunction(
      { ...recipe.metaTrain, checkpointId: 'x', jobId: 'x' },
      {
        trajectories: { n: 3, T: 4, d: 2, phis: new Float32Array(30), losses: new Float32Array(12), querySteps: [] },
        outcome: {
          observations: [[], [{ step: 0, value: 0.5 }] as never, []],
          sent: 6,
          failed: 5,
          failures: [{ taskId: 0, step: 0, code: 'EVALUATOR_FAILED', message: 'down' }],
        },
      },
      { model: fakeModel(), oracle: failingOracle(), progress: silentProgress, dataset: 'x' },
    );
    expect(result.ok).toBe(false);
    const thrown = result.ok ? undefined : result.error;
    expect(thrown).toMatchObject({ code: 'META_TRAIN_NO_DATA' });
    const { line, expected } = formatError(thrown);
    expect(expected).toBe(true);
    expect(line).toBe(
      'metricopt: error [META_TRAIN_NO_DATA]: meta-train: only 0 task(s) got two or more metric observations (5 of 6 queries failed; first: down)',
    );
  });

  it('a meta-test whose validation queries all fail is META_TEST_NO_OBSERVATION, a one-line error', async () => {
    const recipe = tunedRecipe(1);
    const rows = Int32Array.from({ length: 8 }, (_, i) => i);
    const labels = Int32Array.from(rows, (i) => i % 2);
    const sampler: Sampler = {
      sampleInto: (_rng, out, offset = 0, size = out.length - offset) => out.fill(0, offset, offset + size),
    };
    const result = await metaTestSeed(
      { ...recipe.metaTest, steps: 2, batchSize: 4 },
      {
        model: fakeModel(),
        sampler,
        naturalSampler: sampler,
        trainPrior: [0.5, 0.5],
        bestObserved: null,
        valRows: rows,
        testRows: rows,
        testLabels: labels,
        valLabels: labels,
        oracle: failingOracle(),
        evaluator: mcr,
        valueFunction: { d: 2, value: () => 0, valueAndGradient: () => 0 },
      },
      1,
      'job',
    );
    expect(result.ok).toBe(false);
    const error = result.ok ? undefined : result.error;
    expect(error).toMatchObject({ code: 'META_TEST_NO_OBSERVATION' });
    const { line, expected } = formatError(error);
    expect(expected).toBe(true);
    expect(line).toBe('metricopt: error [META_TEST_NO_OBSERVATION]: meta-test: every validation query failed');
  });
});

/** A binary model with d = 2 whose scores are all 0.5 and whose loss is flat. */
function fakeModel(): AdaptedModel {
  return {
    d: 2,
    classes: 2,
    adapterKind: 'input-bias',
    lossAndGrad: (_phis, n) => ({ loss: new Float32Array(n).fill(0.7), grad: new Float32Array(n * 2) }),
    loss: (_phis, n) => new Float32Array(n).fill(0.7),
    predict: (_phis, n, rows) => new Float32Array(n * rows.length).fill(0.5),
    dispose: () => undefined,
  };
}

/** An oracle whose every query fails (an evaluator service that is down). */
function failingOracle(): MetricOracle {
  return {
    metric: { name: 'mcr', direction: 'minimize' },
    registerSplit: async () => undefined,
    evaluate: async (queries) =>
      queries.map(() => err(new MetricError('EVALUATOR_FAILED', "evaluator 'mcr' is unreachable"))),
  };
}
