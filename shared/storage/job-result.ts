import type { ObjectStore } from '../ports/object-store.port.js';
import type { CheckpointContent, ValueFunctionCheckpoint } from '../schemas/checkpoint.js';
import { type JobKind, type JobResult, jobResultSchemas } from '../schemas/job-result.js';
import { err, ok, type Result } from '../util/result.js';
import { readJobDocument } from './job-documents.js';
import { JobError } from './job-errors.js';
import { jobKeys } from './layout.js';
import { listCheckpointVersions, loadCheckpoint, saveCheckpoint } from './value-function-store.js';

/**
 * Saving a job's value function exactly once, however often the job is killed and run again:
 * 1. stash the fitted result (`jobs/<id>/result.json`, a conditional create): a run that finds one
 *    stashed keeps it, content and `createdAt`, instead of its own;
 * 2. find a version already saved with that content (`createdAt` tells a run's fit apart), else
 *    save it as the next version.
 * Training jobs, fanned-out training jobs and fit jobs all go through these three functions.
 */

/** The job's stashed result, parsed with its kind's schema; undefined when none was stashed. */
export const readJobResult = <K extends JobKind>(
  store: ObjectStore,
  jobId: string,
  kind: K,
): Promise<Result<JobResult<K> | undefined, JobError>> =>
  readJobDocument(store, jobId, jobKeys(jobId).result, jobResultSchemas[kind]) as Promise<
    Result<JobResult<K> | undefined, JobError>
  >;

/** Stashes `result` unless one is stashed already; answers the stashed one. */
export async function stashJobResult<K extends JobKind>(
  store: ObjectStore,
  jobId: string,
  kind: K,
  result: JobResult<K>,
): Promise<Result<JobResult<K>, JobError>> {
  if (await store.putIfAbsent(jobKeys(jobId).result, JSON.stringify(result))) return ok(result);
  // An interrupted run fitted (and maybe saved) it already: keep its content and createdAt.
  const stored = await readJobResult(store, jobId, kind);
  if (!stored.ok) return stored;
  if (stored.value === undefined) {
    return err(new JobError('JOB_STATE_INVALID', `job '${jobId}': its stashed result vanished while it was read`));
  }
  return ok(stored.value);
}

/** The version saved with this content, if one is (newest first). */
export async function findSaved(
  store: ObjectStore,
  content: CheckpointContent,
): Promise<ValueFunctionCheckpoint | undefined> {
  const versions = (await listCheckpointVersions(store)).get(content.id) ?? [];
  for (const v of [...versions].reverse()) {
    const existing = await loadCheckpoint(store, content.id, v);
    if (existing.ok && existing.value.createdAt === content.createdAt) return existing.value;
  }
  return undefined;
}

/**
 * Saves the content as the next version, unless (`lookFirst`: a job that may have run before) a
 * version with the same content was saved by a run interrupted before it could record it.
 */
export async function saveOnce(
  store: ObjectStore,
  content: CheckpointContent,
  lookFirst: boolean,
): Promise<ValueFunctionCheckpoint> {
  const saved = lookFirst ? await findSaved(store, content) : undefined;
  return saved ?? saveCheckpoint(store, content);
}
