import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageCachePath } from '../../shared/adapters/image-cache.fs.js';
import { loadJobInputs } from '../../shared/adapters/job-inputs.js';
import { encodeImageSet } from '../../shared/data/image-set.js';
import type { JobSpecInput } from '../../shared/schemas/job.js';
import { overridesOf, parseJobSpec, resolveRunConfig } from '../../shared/use-cases/jobs/job-spec.js';
import { datasetSplit } from '../../shared/use-cases/training/run-rows.js';

/**
 * Issue 24: a training job on a fetched image set names its data folder and its rare-class
 * cell in the spec (`dataset.dataDir`, `overrides.rareClass`), as `demo`/`train` take them from
 * METRICOPT_DATA_DIR and `--rare-class`/`--rare-keep`.
 */
const ROWS_PER_CLASS = 20;

const spec = (dataDir: string, rareClass?: { label: number; keep: number }): JobSpecInput => ({
  format: 'metricopt.job',
  schemaVersion: 1,
  id: 'fmnist-job',
  dataset: { source: 'fashion-mnist', dataDir },
  metric: { builtin: 'aucpr-class-6' },
  overrides: rareClass ? { rareClass } : {},
  output: { valueFunctionId: 'fmnist-aucpr' },
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-job-image-'));
  // A tiny cache in the converter's format: 10 classes x 20 images of 28 x 28.
  const rows = 10 * ROWS_PER_CLASS;
  const set = {
    rows,
    height: 28,
    width: 28,
    classes: 10,
    labels: Uint8Array.from({ length: rows }, (_, i) => i % 10),
    pixels: Uint8Array.from({ length: rows * 784 }, (_, i) => (i * 7) % 256),
  };
  await writeFile(imageCachePath(dir, 'fashion-mnist'), encodeImageSet(set));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('a training-job spec on an image set', () => {
  it('carries the rare-class cell into the run config, and overridesOf carries it back', () => {
    const parsed = parseJobSpec(spec(dir, { label: 6, keep: 0.25 }));
    if (!parsed.ok) throw parsed.error;
    const cfg = resolveRunConfig(parsed.value);
    if (!cfg.ok) throw cfg.error;
    expect(cfg.value.rareClass).toEqual({ label: 6, keep: 0.25 });
    expect(overridesOf(cfg.value).rareClass).toEqual({ label: 6, keep: 0.25 });
    expect(parsed.value.dataset.dataDir).toBe(dir);
    const plain = parseJobSpec(spec(dir));
    if (!plain.ok) throw plain.error;
    const plainCfg = resolveRunConfig(plain.value);
    expect(plainCfg.ok && plainCfg.value.rareClass).toBeUndefined();
    expect(plainCfg.ok && overridesOf(plainCfg.value)).not.toHaveProperty('rareClass');
  });

  it.each([
    ['a keep share of 0', { label: 6, keep: 0 }],
    ['a keep share above 1', { label: 6, keep: 1.5 }],
    ['a negative label', { label: -1, keep: 0.1 }],
  ])('refuses %s as JOB_SPEC_INVALID', (_, rareClass) => {
    const r = parseJobSpec(spec(dir, rareClass));
    expect(!r.ok && r.error.code).toBe('JOB_SPEC_INVALID');
  });

  it('loads the data set from the spec’s data folder (a path or a file:// URL) and keeps the rare class rare in training', async () => {
    for (const where of [dir, pathToFileURL(dir).href]) {
      const parsed = parseJobSpec(spec(where, { label: 6, keep: 0.25 }));
      if (!parsed.ok) throw parsed.error;
      const { dataset, evaluator } = await loadJobInputs(parsed.value);
      expect([dataset.rows, dataset.classes, evaluator.name]).toEqual([10 * ROWS_PER_CLASS, 10, 'aucpr-class-6']);
      const cfg = resolveRunConfig(parsed.value);
      if (!cfg.ok) throw cfg.error;
      const split = datasetSplit(dataset, cfg.value);
      const count = (rows: Int32Array, k: number) => rows.filter((r) => dataset.labels[r] === k).length;
      // 45:5:10 of 20 per class: 15 training rows of each class, a quarter of class 6's kept.
      expect(count(split.train, 6)).toBe(Math.round(0.25 * count(split.train, 5)));
      expect(count(split.test, 6)).toBe(count(split.test, 5));
    }
  });

  it('fails IMAGE_CACHE_MISSING naming the fetch command when the spec’s data folder has no cache', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'mo-job-image-empty-'));
    try {
      const parsed = parseJobSpec(spec(empty));
      if (!parsed.ok) throw parsed.error;
      await expect(loadJobInputs(parsed.value)).rejects.toMatchObject({
        code: 'IMAGE_CACHE_MISSING',
        message: expect.stringContaining('metricopt data fetch fashion-mnist'),
      });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('refuses a rare class the data set does not have as JOB_SPEC_INVALID when the job loads', async () => {
    const parsed = parseJobSpec(spec(dir, { label: 10, keep: 0.1 }));
    if (!parsed.ok) throw parsed.error;
    await expect(loadJobInputs(parsed.value)).rejects.toMatchObject({ code: 'JOB_SPEC_INVALID' });
  });
});
