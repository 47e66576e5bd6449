import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { jsonResponse } from './answers.js';
import { unwrap } from './errors.js';
import type { AddRoute, ValueApiRoutes } from './routes.js';

/**
 * GET /v1/jobs/{id}: a training job's status document (`jobs/<id>/status.json`, written by the
 * trainer: `metricopt train`, the trainer workers, the container), as `metricopt jobs status` shows it.
 */
export function addJobRoutes(add: AddRoute, routes: ValueApiRoutes, store: ObjectStore): void {
  add(routes.job, async (c) => jsonResponse(unwrap(await readJobStatus(store, c.req.param('id') as string))));
}
