import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SparseDataset } from '../data/dataset.js';
import { loadRowContext } from './context-file.fs.js';
import type { Evaluator } from '../ports/evaluator.port.js';
import { builtinEvaluator } from '../metrics/registry.js';
import { withContextFor } from '../metrics/context-metrics.js';
import { loadEvaluatorModule } from './evaluator-module.in-process.js';
import type { JobSpec } from '../schemas/job.js';
import { DomainError } from '../util/result.js';
import { loadDataset } from './dataset.fs.js';
import { type ObjectStoreOptions, openObjectStore } from './from-url.js';

/**
 * A job's dataset source as something `loadDataset` reads: a bundled name or a path as is, a
 * file:// URL as its path, an s3://bucket/key object downloaded to a temporary file first.
 */
export async function localDatasetSource(source: string, options: ObjectStoreOptions = {}): Promise<string> {
  if (source.startsWith('file://')) return fileURLToPath(source);
  if (!source.startsWith('s3://')) return source;
  const m = /^(s3:\/\/[^/]+)\/(.+)$/.exec(source);
  if (!m) throw new DomainError('DATASET_NOT_FOUND', `dataset ${source}: expected s3://bucket/key`);
  const bytes = await (await openObjectStore(m[1] as string, options)).get(m[2] as string);
  if (!bytes) throw new DomainError('DATASET_NOT_FOUND', `dataset ${source} not found`);
  const local = join(await mkdtemp(join(tmpdir(), 'metricopt-data-')), basename(m[2] as string));
  await writeFile(local, bytes);
  return local;
}

/**
 * The dataset and the evaluator a job names (the training container's loader); the job's
 * context file, when it names one, becomes the data set's `context`, and the columns the
 * metric or `dataset.groupFeature` need beyond it are derived (withContextFor). Fetched image
 * sets are read from the spec's `dataset.dataDir`, else `options.dataDir` (the container's
 * METRICOPT_DATA_DIR), else the package's `.cache/data`; a rare class the data set does not
 * have is JOB_SPEC_INVALID.
 */
export async function loadJobInputs(
  spec: JobSpec,
  options: ObjectStoreOptions & { dataDir?: string } = {},
): Promise<{ dataset: SparseDataset; evaluator: Evaluator }> {
  const evaluator =
    'builtin' in spec.metric ? builtinEvaluator(spec.metric.builtin) : await loadEvaluatorModule(spec.metric.module);
  if (!evaluator.ok) throw evaluator.error;
  const loadOptions: { features?: number; positiveLabel?: number; dataDir?: string } = {};
  if (spec.dataset.features !== undefined) loadOptions.features = spec.dataset.features;
  if (spec.dataset.positiveLabel !== undefined) loadOptions.positiveLabel = spec.dataset.positiveLabel;
  const dataDir = spec.dataset.dataDir ?? options.dataDir;
  if (dataDir !== undefined) loadOptions.dataDir = dataDir.startsWith('file://') ? fileURLToPath(dataDir) : dataDir;
  const ds = await loadDataset(await localDatasetSource(spec.dataset.source, options), loadOptions);
  if (!ds.ok) throw ds.error;
  const rare = spec.overrides.rareClass;
  if (rare !== undefined && rare.label >= ds.value.classes) {
    throw new DomainError(
      'JOB_SPEC_INVALID',
      `overrides.rareClass.label: ${rare.label} is not a class of '${ds.value.name}' (classes 0..${ds.value.classes - 1})`,
    );
  }
  let dataset = ds.value;
  if (spec.dataset.context !== undefined) {
    const context = await loadRowContext(await localDatasetSource(spec.dataset.context, options), dataset.rows);
    if (!context.ok) throw context.error;
    dataset = { ...dataset, context: context.value };
  }
  return { dataset: withContextFor(dataset, evaluator.value, spec.dataset.groupFeature), evaluator: evaluator.value };
}
