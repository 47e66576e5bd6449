import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { type FitJobSpec, fitJobSpecSchema } from '../../shared/schemas/job.js';
import { createFitJob } from '../../shared/use-cases/byom/fit-job-spec.js';

/** The smallest fit-job spec: a metric to minimize, written to `valueFunctionId`, no overrides. */
export const fitJobSpec = (id: string, metricName: string, valueFunctionId = `${id}-vf`): FitJobSpec =>
  fitJobSpecSchema.parse({
    format: 'metricopt.fit-job',
    schemaVersion: 1,
    id,
    metric: { name: metricName, direction: 'minimize' },
    output: { valueFunctionId },
  });

/** Creates `fitJobSpec(id, metricName, valueFunctionId)` in `store`, throwing if the store refuses it. */
export async function createMinimalFitJob(
  store: ObjectStore,
  id: string,
  metricName: string,
  valueFunctionId = `${id}-vf`,
): Promise<FitJobSpec> {
  const created = await createFitJob(store, fitJobSpec(id, metricName, valueFunctionId));
  if (!created.ok) throw created.error;
  return created.value;
}
