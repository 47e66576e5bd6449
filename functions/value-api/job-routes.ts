import type { Context, Hono } from 'hono';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import { jobIdSchema } from '../../shared/schemas/job.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { ApiError, ApiErrorCode } from './errors.js';

/**
 * GET /v1/jobs/{id}: a training job's status document (`jobs/<id>/status.json`, written by the
 * trainer: `metricopt train`, the trainer workers, the container), as `metricopt jobs status` shows it.
 */
export function addJobRoutes(
  app: Hono,
  deps: { store: ObjectStore; authorize: (c: Context, scope: 'write') => unknown },
): void {
  app.get('/v1/jobs/:id', async (c) => {
    deps.authorize(c, 'write');
    const id = c.req.param('id');
    if (!jobIdSchema.safeParse(id).success) {
      throw new ApiError(ApiErrorCode.invalidQuery, `'${id.slice(0, 80)}' is not a job id (letters, digits, . _ -)`);
    }
    const status = await readJobStatus(deps.store, id);
    if (!status.ok) throw status.error;
    return new Response(JSON.stringify(status.value), { headers: { 'content-type': 'application/json' } });
  });
}
