import { describe, expect, it } from 'vitest';
import { buildRunConfig } from '../../cli/run-options.js';
import { paperRecipe, replicateSeed, reseed, tunedRecipe } from '../../shared/use-cases/training/recipes.js';

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
    expect(t.metaTest).toMatchObject({ start: 'zero', method: 'vf-descent', trustRadius: 2, endpointQueries: 5 });
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
