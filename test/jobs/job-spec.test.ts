import { describe, expect, it } from 'vitest';
import type { JobSpecInput } from '../../shared/schemas/job.js';
import { overridesOf, parseJobSpec, parseJobSpecText, resolveRunConfig } from '../../shared/use-cases/jobs/job-spec.js';
import { recipe } from '../../shared/use-cases/training/recipes.js';

const minimal: JobSpecInput = {
  format: 'metricopt.job',
  schemaVersion: 1,
  id: 'job-1',
  dataset: { source: 'a9a' },
  metric: { builtin: 'mcr' },
  output: { valueFunctionId: 'a9a-mcr' },
};

function codeOf(json: unknown): string | undefined {
  const r = parseJobSpec(json);
  return r.ok ? undefined : r.error.code;
}

describe('parseJobSpec', () => {
  it('fills the defaults and resolves to the tuned recipe at seed 1', () => {
    const r = parseJobSpec(minimal);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.recipe).toBe('tuned');
    expect(r.value.seed).toBe(1);
    expect(r.value.checkpoint).toEqual({ chunkTasks: 200, queryBatch: 48 });
    const cfg = resolveRunConfig(r.value);
    expect(cfg.ok && cfg.value).toEqual(recipe('tuned', 1));
  });

  it('derives every seed from the job seed and applies overrides section by section', () => {
    const r = parseJobSpec({
      ...minimal,
      recipe: 'paper',
      seed: 5,
      overrides: {
        metaTrain: { trajectories: { tasks: 12, steps: 6 }, train: { epochs: 2 }, ensemble: 2 },
        model: { adapter: { kind: 'input-bias', d: 8 } },
      },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const cfg = resolveRunConfig(r.value);
    if (!cfg.ok) throw cfg.error;
    const base = recipe('paper', 5);
    expect(cfg.value.metaTrain.trajectories).toEqual({ ...base.metaTrain.trajectories, tasks: 12, steps: 6 });
    expect(cfg.value.metaTrain.trajectories.seed).toBe(6);
    expect(cfg.value.metaTrain.train).toEqual({ ...base.metaTrain.train, epochs: 2 });
    expect(cfg.value.metaTrain.ensemble).toBe(2);
    expect(cfg.value.model.adapter).toEqual({ kind: 'input-bias', d: 8 });
    expect(cfg.value.model.hidden).toEqual(base.model.hidden);
    expect(cfg.value.metaTest).toEqual(base.metaTest);
  });

  it('uses the ConvNet for the bundled digits unless the job says otherwise', () => {
    const r = parseJobSpec({ ...minimal, dataset: { source: 'digits' } });
    const cfg = r.ok ? resolveRunConfig(r.value) : undefined;
    expect(cfg?.ok && cfg.value.architecture).toBe('convnet');
  });

  it('round-trips a RunConfig through overridesOf', () => {
    const cfg = recipe('tuned', 3);
    cfg.metaTrain.trajectories.tasks = 40;
    cfg.metaTrain.train = { ...cfg.metaTrain.train, epochs: 3, learningRate: 0.02 };
    cfg.model = { ...cfg.model, adapter: { kind: 'film', layer: 1 } };
    cfg.pretrain = { ...cfg.pretrain, epochs: 1 };
    // A job at another seed: the overrides carry every seed explicitly.
    const r = parseJobSpec(JSON.parse(JSON.stringify({ ...minimal, seed: 3, overrides: overridesOf(cfg) })));
    if (!r.ok) throw r.error;
    const back = resolveRunConfig(r.value);
    expect(back.ok && back.value).toEqual(cfg);
  });
});

describe('parseJobSpec with the context settings (issue 19)', () => {
  const lowRank = { kind: 'input-bias', d: 16, outputBias: true, logitRank: 32 } as const;

  it('takes the group feature, label noise and the low-rank adapter, and round-trips them through overridesOf', () => {
    const r = parseJobSpec({
      ...minimal,
      dataset: { source: 'a9a', groupFeature: 71, context: '/data/amounts.csv' },
      metric: { builtin: 'group-balanced-error' },
      overrides: { labelNoise: 0.5, model: { adapter: lowRank } },
    });
    if (!r.ok) throw r.error;
    expect(r.value.dataset).toEqual({ source: 'a9a', groupFeature: 71, context: '/data/amounts.csv' });
    const cfg = resolveRunConfig(r.value);
    if (!cfg.ok) throw cfg.error;
    expect(cfg.value).toEqual({
      ...recipe('tuned', 1),
      labelNoise: 0.5,
      model: { ...recipe('tuned', 1).model, adapter: lowRank },
    });
    const again = parseJobSpec(JSON.parse(JSON.stringify({ ...minimal, overrides: overridesOf(cfg.value) })));
    if (!again.ok) throw again.error;
    const back = resolveRunConfig(again.value);
    expect(back.ok && back.value).toEqual(cfg.value);
  });

  it.each([
    ['a label-noise rate above 1', { overrides: { labelNoise: 1.5 } }, /overrides\.labelNoise/],
    ['a negative group feature', { dataset: { source: 'a9a', groupFeature: -1 } }, /dataset\.groupFeature/],
    [
      'a meta-test section (a training job runs no meta-test)',
      { overrides: { metaTest: { start: 'decision-shift' } } },
      /metaTest/,
    ],
  ])('refuses %s with JOB_SPEC_INVALID', (_, extra, message) => {
    const r = parseJobSpec({ ...minimal, ...extra });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('JOB_SPEC_INVALID');
    expect(r.error.message).toMatch(message);
  });
});

describe('parseJobSpec bad input', () => {
  it('reports text that is not JSON as JOB_SPEC_NOT_JSON', () => {
    const r = parseJobSpecText('{"id": ', 'job.json');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('JOB_SPEC_NOT_JSON');
    expect(r.error.message).toMatch(/^job\.json is not JSON/);
  });

  it.each([
    ['a missing id', { ...minimal, id: undefined }, /^job: id:/],
    ['an id with capitals', { ...minimal, id: 'Job 1' }, /^job: id: ids are lower-case/],
    ['an unknown field', { ...minimal, epochs: 3 }, /epochs/],
    ['a wrong format', { ...minimal, format: 'other' }, /^job: format:/],
    ['a metric that is both builtin and module', { ...minimal, metric: { builtin: 'mcr', module: 'x.mjs' } }, /metric/],
    ['an empty dataset source', { ...minimal, dataset: { source: '' } }, /dataset\.source is required/],
    [
      'a negative task count',
      { ...minimal, overrides: { metaTrain: { trajectories: { tasks: -1 } } } },
      /^job: overrides\.metaTrain\.trajectories\.tasks:/,
    ],
    [
      'an unknown hyperparameter',
      { ...minimal, overrides: { metaTrain: { train: { epoch: 3 } } } },
      /overrides\.metaTrain\.train/,
    ],
    [
      'more queries per task than steps',
      { ...minimal, overrides: { metaTrain: { trajectories: { steps: 4, queries: 6 } } } },
      /queries: 6 queries per task exceed the 5 steps/,
    ],
    ['a zero chunk size', { ...minimal, checkpoint: { chunkTasks: 0 } }, /^job: checkpoint\.chunkTasks:/],
  ])('rejects %s with JOB_SPEC_INVALID', (_name, json, message) => {
    const r = parseJobSpec(json);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('JOB_SPEC_INVALID');
    expect(r.error.message).toMatch(message);
  });

  it('accepts what the schema documents and nothing less', () => {
    expect(codeOf(minimal)).toBeUndefined();
    expect(codeOf({ ...minimal, output: {} })).toBe('JOB_SPEC_INVALID');
  });
});
