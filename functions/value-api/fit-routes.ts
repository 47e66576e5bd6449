import type { Context } from 'hono';
import type { ObjectStore } from '../../shared/ports/object-store.port.js';
import type { Queue } from '../../shared/ports/queue.port.js';
import { BINARY_CONTENT_TYPE } from '../../shared/schemas/api.js';
import { MAX_CONTEXT_COLUMNS } from '../../shared/schemas/evaluation.js';
import { createFitJobRequestSchema, JSON_LINES_TYPES } from '../../shared/schemas/fit-api.js';
import { parseFitLabels } from '../../shared/use-cases/byom/fit-inputs.js';
import type { FitLauncher } from '../../shared/ports/fit.port.js';
import {
  cancelFitJob,
  fitJobSummary,
  startFitJob,
  uploadLabels,
  uploadObservations,
  uploadPredictions,
} from '../../shared/use-cases/byom/fit-job-api.js';
import { createFitJob, parseFitJobSpec } from '../../shared/use-cases/byom/fit-job-spec.js';
import { jobKeys } from '../../shared/storage/layout.js';
import { claimFitJob, claimValueFunction, requireFitJobOwner } from '../../shared/use-cases/byom/fit-ownership.js';
import { parseObservationBinary, parseObservationText } from '../../shared/use-cases/byom/observation-batches.js';
import { jsonResponse } from './answers.js';
import { parseJson } from './body.js';
import { ApiError, ApiErrorCode, unwrap } from './errors.js';
import type { AddRoute, ValueApiEnv, ValueApiRoutes } from './routes.js';
import { mediaType, requireJson, validate } from './validate.js';

/**
 * Bring your own model over HTTP (docs/bring-your-own-model.md):
 *
 *   POST /v1/fit-jobs                     create a fit job (201; the same spec again: 200)
 *   POST /v1/fit-jobs/{id}/observations   upload a batch: JSON lines, or the binary form
 *   POST /v1/fit-jobs/{id}/labels         labels {classes, labels} that predictions are scored on
 *   POST /v1/fit-jobs/{id}/predictions/{key}  float32 predictions that lines name to be scored
 *   POST /v1/fit-jobs/{id}/start          start the fit (202; queued or run in this process)
 *   POST /v1/fit-jobs/{id}/cancel         cancel it (it stops, or never runs; a done job stays done)
 *   GET  /v1/fit-jobs/{id}                its state, uploads and status document
 *
 * When done, the value function is served under /v1/value-functions/{valueFunctionId}.
 */
export interface FitRoutesOptions {
  store: ObjectStore;
  launcher: FitLauncher;
}

export function mountFitRoutes(add: AddRoute, routes: ValueApiRoutes, { store, launcher }: FitRoutesOptions): void {
  /** The job id of the path (valid: the route's schema), once the caller is known to own the job. */
  const ownedJob = async (c: Context<ValueApiEnv>): Promise<string> => {
    const id = c.req.param('id') as string;
    unwrap(await requireFitJobOwner(store, id, c.var.principal.id));
    return id;
  };

  add(routes.createFitJob, async (c) => {
    requireJson(c.req.header('content-type'), 'create fit job');
    const body = validate(
      'create fit job',
      createFitJobRequestSchema,
      parseJson(c.var.body, { op: 'create fit job', maxContainers: 64 }),
    );
    const spec = unwrap(parseFitJobSpec({ ...body, format: 'metricopt.fit-job', schemaVersion: 1 }, 'create fit job'));
    // The value function id first (nothing is stored for a caller who may not publish to it).
    const owner = c.var.principal.id;
    unwrap(await claimValueFunction(store, spec, owner));
    const existed = (await store.get(jobKeys(spec.id).spec)) !== undefined;
    unwrap(await createFitJob(store, spec));
    unwrap(await claimFitJob(store, spec.id, owner));
    return jsonResponse(unwrap(await fitJobSummary(store, spec.id)), existed ? 200 : 201);
  });

  add(routes.fitJob, async (c) => jsonResponse(unwrap(await fitJobSummary(store, await ownedJob(c)))));

  add(routes.observations, async (c) => {
    const id = await ownedJob(c);
    const type = c.req.header('content-type');
    const media = type === undefined ? undefined : mediaType(type);
    const binary = media === BINARY_CONTENT_TYPE;
    if (!binary && !(JSON_LINES_TYPES as readonly (string | undefined)[]).includes(media)) {
      throw new ApiError(
        ApiErrorCode.unsupportedMediaType,
        `observations: ${type === undefined ? 'the request has no Content-Type' : `content type '${type.slice(0, 80)}' is not supported`}; send application/x-ndjson (JSON lines) or ${BINARY_CONTENT_TYPE}`,
      );
    }
    const bytes = c.var.body;
    const source = 'observations';
    const batch = unwrap(
      binary ? parseObservationBinary(bytes, source) : parseObservationText(new TextDecoder().decode(bytes), source),
    );
    return jsonResponse(unwrap(await uploadObservations(store, id, batch, source)));
  });

  add(routes.labels, async (c) => {
    const id = await ownedJob(c);
    requireJson(c.req.header('content-type'), 'labels');
    // The body, labels, rows, the context object and one array per context column.
    const body = parseJson(c.var.body, { op: 'labels', maxContainers: 4 + MAX_CONTEXT_COLUMNS });
    const r = unwrap(await uploadLabels(store, id, unwrap(parseFitLabels(body))));
    return jsonResponse(r, r.created ? 201 : 200);
  });

  add(routes.predictions, async (c) => {
    const id = await ownedJob(c);
    const type = c.req.header('content-type');
    if (type === undefined || mediaType(type) !== BINARY_CONTENT_TYPE) {
      throw new ApiError(
        ApiErrorCode.unsupportedMediaType,
        `predictions: send the float32 little-endian values as ${BINARY_CONTENT_TYPE}`,
      );
    }
    const r = unwrap(await uploadPredictions(store, id, c.req.param('key') as string, c.var.body));
    return jsonResponse(r, r.created ? 201 : 200);
  });

  add(routes.start, async (c) => {
    const id = await ownedJob(c);
    // application/json (a body of {} or none): a page of another origin cannot send it without a preflight.
    requireJson(c.req.header('content-type'), 'start');
    emptyObject(c.var.body, 'start');
    const { summary, started } = unwrap(await startFitJob(store, id, launcher));
    return jsonResponse(summary, started ? 202 : 200);
  });

  add(routes.cancel, async (c) => {
    const id = await ownedJob(c);
    requireJson(c.req.header('content-type'), 'cancel');
    emptyObject(c.var.body, 'cancel');
    return jsonResponse(unwrap(await cancelFitJob(store, id, launcher)));
  });
}

/** start and cancel take no settings: their body is `{}` (or empty); anything else is refused, as the schema says. */
function emptyObject(bytes: Uint8Array, op: string): void {
  if (bytes.byteLength === 0) return;
  const body = parseJson(bytes, { op, maxContainers: 1 });
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length > 0) {
    throw new ApiError(ApiErrorCode.invalidBody, `${op}: invalid body: send {} (this operation takes no settings)`);
  }
}

/** Sends `{"kind":"job","jobId":ID}` on the jobs queue (METRICOPT_JOBS_QUEUE); a trainer worker runs it. */
export function queueFitLauncher(queue: Queue): FitLauncher {
  return {
    via: 'queue',
    async launch(spec) {
      await queue.send([JSON.stringify({ kind: 'job', jobId: spec.id })]);
    },
  };
}

/** No queue and no in-process runner (the Lambda handler without METRICOPT_JOBS_QUEUE): start is refused. */
export const unavailableFitLauncher: FitLauncher = {
  via: 'queue',
  unavailable: 'no jobs queue is configured (set METRICOPT_JOBS_QUEUE)',
  launch: () => Promise.reject(new Error('unavailableFitLauncher.launch')),
};
