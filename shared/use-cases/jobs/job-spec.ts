import type { z } from 'zod';
import { type JobSpec, jobSpecSchema, type TrainingOverrides } from '../../schemas/job.js';
import { err, ok, type Result } from '../../util/result.js';
import { JobError } from '../../storage/job-errors.js';
import { imageRunDefaults, type RunConfig, recipe } from '../training/recipes.js';
import { issueLine } from '../../schemas/zod-issue.js';

const describe = (error: z.ZodError): string => issueLine(error, '(root)');

/** Parses a job spec (already-parsed JSON); the message names the first offending field. */
export function parseJobSpec(json: unknown, source = 'job'): Result<JobSpec, JobError> {
  const parsed = jobSpecSchema.safeParse(json);
  if (!parsed.success) return err(new JobError('JOB_SPEC_INVALID', `${source}: ${describe(parsed.error)}`));
  const resolved = resolveRunConfig(parsed.data);
  if (!resolved.ok) return err(new JobError('JOB_SPEC_INVALID', `${source}: ${resolved.error.message}`));
  return ok(parsed.data);
}

/** Parses a job file's text. */
export function parseJobSpecText(text: string, source = 'job'): Result<JobSpec, JobError> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return err(new JobError('JOB_SPEC_NOT_JSON', `${source} is not JSON: ${(e as Error).message.slice(0, 120)}`));
  }
  return parseJobSpec(json, source);
}

/** The job's RunConfig: its recipe at its seed (every seed derived as the presets derive them), then the overrides. */
export function resolveRunConfig(spec: JobSpec): Result<RunConfig, JobError> {
  const cfg = recipe(spec.recipe, spec.seed);
  const o = spec.overrides;
  const image = imageRunDefaults(spec.dataset.source);
  cfg.architecture = o.architecture ?? (spec.dataset.source === 'digits' || image ? 'convnet' : cfg.architecture);
  if (image) {
    cfg.split = image.split;
    if (cfg.architecture === 'convnet') cfg.convnet = image.convnet;
  }
  if (o.selectionSplit) cfg.selectionSplit = o.selectionSplit;
  if (o.reportSplit) cfg.reportSplit = o.reportSplit;
  if (o.rareClass) cfg.rareClass = { ...o.rareClass };
  if (o.model) {
    cfg.model = { ...cfg.model, ...defined(o.model) };
  }
  if (o.pretrain) cfg.pretrain = { ...cfg.pretrain, ...defined(o.pretrain) };
  if (o.labelNoise !== undefined) cfg.labelNoise = o.labelNoise;
  if (o.metaTrain) {
    const { trajectories, train, ...rest } = o.metaTrain;
    cfg.metaTrain = {
      ...cfg.metaTrain,
      ...defined(rest),
      trajectories: { ...cfg.metaTrain.trajectories, ...defined(trajectories ?? {}) },
      train: { ...cfg.metaTrain.train, ...defined(train ?? {}) },
    };
  }
  const tr = cfg.metaTrain.trajectories;
  if (tr.queries > tr.steps + 1) {
    return err(
      new JobError(
        'JOB_SPEC_INVALID',
        `overrides.metaTrain.trajectories.queries: ${tr.queries} queries per task exceed the ${tr.steps + 1} steps of a trajectory`,
      ),
    );
  }
  return ok(cfg);
}

/** The entries that are set (zod's partial() types absent keys as `undefined`). */
function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

/** Every training setting of a RunConfig as overrides (a job built from command-line flags). */
export function overridesOf(cfg: RunConfig): TrainingOverrides {
  // The recipe name comes from the job's `recipe`; the ids from the job itself.
  const {
    recipe: _r,
    checkpointId: _c,
    jobId: _j,
    ...metaTrain
  } = cfg.metaTrain as RunConfig['metaTrain'] & { checkpointId?: string; jobId?: string };
  return {
    architecture: cfg.architecture,
    selectionSplit: cfg.selectionSplit,
    reportSplit: cfg.reportSplit,
    ...(cfg.rareClass ? { rareClass: { ...cfg.rareClass } } : {}),
    model: { ...cfg.model, hidden: [...cfg.model.hidden] },
    pretrain: { ...cfg.pretrain },
    metaTrain: { ...metaTrain, trajectories: { ...metaTrain.trajectories }, train: { ...metaTrain.train } },
    ...(cfg.labelNoise === undefined ? {} : { labelNoise: cfg.labelNoise }),
  };
}
