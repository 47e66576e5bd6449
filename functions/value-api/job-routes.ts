import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { readJobStatus, shownJobState } from '../../shared/storage/job-documents.js';
import { jsonResponse } from './answers.js';
import { unwrap } from './errors.js';
import type { AddRoute, ValueApiRoutes } from './routes.js';

/**
 * GET /v1/jobs/{id}: a training job's status document (`jobs/<id>/status.json`, written by the
 * trainer: `metricopt train`, the trainer workers, the container), as `metricopt jobs status --json`
 * shows it: a running job whose lease expired is `stalled`.
 */
export function addJobRoutes(add: AddRoute, routes: ValueApiRoutes, store: ObjectStore): void {
  add(routes.job, async (c) => {
    const status = unwrap(await readJobStatus(store, c.req.param('id') as string));
    return jsonResponse({ ...status, state: shownJobState(status) });
  });
}
