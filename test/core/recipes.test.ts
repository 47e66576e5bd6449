import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addRunOptions, buildRunConfig } from '../../cli/run-options.js';
import { runConfigSchema, trainingOverridesSchema } from '../../shared/schemas/run-config.js';
import {
  multiClassMetaTestDefaults,
  paperRecipe,
  replicateSeed,
  reseed,
  tunedRecipe,
} from '../../shared/use-cases/training/recipes.js';
import { METRIC_LOSS_DEFAULTS } from '../../shared/use-cases/training/metric-learning-baseline.js';

describe('recipes', () => {
  it('keep the paper literal: online Reptile, BatchNorm, raw targets, Guided ES from a random phi_0', () => {
    const p = paperRecipe();
    expect(p.metaTrain).toMatchObject({ training: 'online', standardise: false, ensemble: 1, trainStride: 1 });
    expect(p.metaTrain.train).toMatchObject({
      batchNorm: true,
      innerLearningRate: 0.005,
      eta0: 1,
      gamma: 10,
      oeWeight: 1,
    });
    expect(p.metaTrain.trajectories).toMatchObject({ steps: 50, queries: 3, phi0Std: 1 });
    expect(p.metaTest).toMatchObject({
      start: 'random',
      method: 'guided-es',
      endpointQueries: 0,
      lossWeight: 0,
      anchorEndpoints: false,
    });
    expect(p.model.adapter).toEqual({ kind: 'input-bias', d: 16 });
    expect(p.selectionSplit).toBe('shared');
    expect(p.metaTest.es).toMatchObject({ P: 3, sigma2: 0.01, k: 3 });
  });
  it('tune what METHOD.md found to work', () => {
    const t = tunedRecipe();
    expect(t.metaTrain).toMatchObject({
      training: 'offline',
      standardise: true,
      ensemble: 3,
      trajectories: { tasks: 1000, queries: 5 },
    });
    expect(t.metaTrain.train.batchNorm).toBe(false);
    expect(t.metaTest).toMatchObject({
      start: 'decision-shift',
      endpointRule: 'confirm',
      method: 'vf-descent',
      trustRadius: 2,
      endpointQueries: 5,
    });
  });
  it('start multi-class runs at the pre-trained point with the plain endpoint rule, and leave the paper recipe alone', () => {
    const m = multiClassMetaTestDefaults(tunedRecipe());
    expect(m.metaTest.start).toBe('zero');
    expect(m.metaTest.endpointRule).toBeUndefined();
    expect({ ...m, metaTest: {} }).toEqual({ ...tunedRecipe(), metaTest: {} });
    expect(multiClassMetaTestDefaults(paperRecipe())).toEqual(paperRecipe());
  });
  it('keep the loss (Eq. 1), output biases and fair endpoint choices in the default (bench/RESULTS.md says why)', () => {
    const t = tunedRecipe();
    expect(t.metaTest).toMatchObject({ lossWeight: 1, lossSampler: 'balanced', anchorEndpoints: true });
    expect(t.model.adapter).toEqual({ kind: 'input-bias', d: 16, outputBias: true });
    expect(t).toMatchObject({ selectionSplit: 'separate', reportSplit: 'test', replicates: 1 });
  });
  it('reseed every seed of a replicate from its base seed, as the presets do', () => {
    const r = reseed(tunedRecipe(1), replicateSeed(1, 2));
    expect(r).toEqual(tunedRecipe(2001));
  });
  it('apply every command-line option over the preset', () => {
    const cfg = buildRunConfig({
      recipe: 'tuned',
      seed: 3,
      tasks: 10,
      steps: 20,
      queriesPerTask: 4,
      esLambda: 0.5,
      trustRadius: Number.POSITIVE_INFINITY,
      batchNorm: true,
      oeWeight: 1,
      vfEngine: 'tfjs',
      dataset: 'a9a',
      outputBias: false,
      lossWeight: 0.5,
      replicates: 3,
    });
    expect(cfg.model.adapter).toEqual({ kind: 'input-bias', d: 16, outputBias: false });
    expect(cfg).toMatchObject({ replicates: 3, metaTest: { lossWeight: 0.5 } });
    expect(cfg.metaTrain.trajectories).toMatchObject({ tasks: 10, steps: 20, queries: 4, seed: 4 });
    expect(cfg.metaTest).toMatchObject({ steps: 20, trustRadius: Number.POSITIVE_INFINITY, es: { lambda: 0.5 } });
    expect(cfg.metaTrain.train).toMatchObject({ batchNorm: true, oeWeight: 1, engine: 'tfjs' });
    expect(tunedRecipe().metaTrain.train.engine).toBe('f32');
    expect(paperRecipe().metaTrain.train.engine).toBe('f32');
    expect(() => buildRunConfig({ recipe: 'tuned', seed: 1, steps: 3, queriesPerTask: 9, dataset: 'a9a' })).toThrow(
      /exceeds/,
    );
  });
});

describe('the RunConfig schema', () => {
  it('accepts both presets at any seed, and what a command line builds from them', () => {
    for (const cfg of [
      paperRecipe(),
      tunedRecipe(7),
      buildRunConfig({ recipe: 'paper', seed: 2, adapter: 'low-rank' }),
    ]) {
      expect(runConfigSchema.parse(cfg)).toEqual(cfg);
    }
  });

  it('rejects a setting out of range or unknown, naming it', () => {
    const bad = { ...tunedRecipe(), metaTest: { ...tunedRecipe().metaTest, endpointQueries: -1 } };
    expect(runConfigSchema.safeParse(bad).error?.issues[0]?.path).toEqual(['metaTest', 'endpointQueries']);
    expect(runConfigSchema.safeParse({ ...tunedRecipe(), extra: 1 }).success).toBe(false);
  });

  it('gives job overrides the same constraints, every section partial, no meta-test and no recipe name', () => {
    expect(trainingOverridesSchema.parse({ metaTrain: { train: { epochs: 3 } } })).toEqual({
      metaTrain: { train: { epochs: 3 } },
    });
    for (const bad of [
      { metaTrain: { trajectories: { tasks: 1 } } },
      { metaTrain: { recipe: 'paper' } },
      { metaTest: { steps: 5 } },
      { model: { adapter: { kind: 'input-bias' } } },
    ]) {
      expect(trainingOverridesSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it('gives the run flags their parsers and choices, and lists each recipe default in the help', async () => {
    const cmd = addRunOptions(new Command('demo').exitOverride());
    const option = (long: string) => cmd.options.find((o) => o.long === long);
    expect(option('--tasks')?.parseArg?.('2', undefined)).toBe(2);
    expect(() => option('--tasks')?.parseArg?.('1', undefined)).toThrow('expected an integer >= 2');
    expect(() => option('--vf-lr')?.parseArg?.('0', undefined)).toThrow('expected a number > 0');
    expect(option('--trust-radius')?.parseArg?.('inf', undefined)).toBe(Number.POSITIVE_INFINITY);
    expect(option('--loss-sampler')?.argChoices).toEqual(['balanced', 'natural']);
    expect(option('--vf-engine')?.argChoices).toEqual(['f32', 'tfjs']);
    let help = '';
    cmd.configureOutput({ writeOut: (s) => (help += s) });
    expect(() => cmd.parse(['--help'], { from: 'user' })).toThrow();
    expect(help).toContain('--tasks paper 1000, tuned 1000');
    expect(help).toContain('--trust-radius paper Infinity, tuned 2');
    expect(help).toContain('--vf-train-lr paper 0.005, tuned 0.01');
    expect(help).toContain('--output-bias paper false, tuned true');
  });

  it('sets the metric-learning baseline from --metric-loss-lr and --metric-loss-temperature, refusing 0', () => {
    const cmd = addRunOptions(new Command('demo').exitOverride());
    const option = (long: string) => cmd.options.find((o) => o.long === long);
    expect(() => option('--metric-loss-temperature')?.parseArg?.('0', undefined)).toThrow('expected a number > 0');
    const cfg = buildRunConfig({ recipe: 'tuned', seed: 1, dataset: 'digits', metricLossLr: 0.2 });
    expect(cfg.metaTest.metricLoss).toEqual({ learningRate: 0.2, temperature: METRIC_LOSS_DEFAULTS.temperature });
    expect(runConfigSchema.parse(cfg)).toEqual(cfg);
    expect(paperRecipe().metaTest.metricLoss).toEqual(METRIC_LOSS_DEFAULTS);
  });
});
