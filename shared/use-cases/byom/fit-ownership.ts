import { z } from 'zod';
import { getText, type ObjectStore } from '../../ports/object-store.port.js';
import type { FitJobSpec } from '../../schemas/job.js';
import { domainErrorClass, err, ok, type Result } from '../../util/result.js';
import { jobKeys, valueFunctionOwnerKey } from '../../storage/layout.js';
import { JobError } from '../../storage/job-errors.js';
import { listCheckpointVersions, loadCheckpoint } from '../../storage/value-function-store.js';

/**
 * Who may publish what (issue 23): a value function id belongs to the principal that first
 * claimed it through a fit job (its API key, its IAM ARN, or `anonymous` with auth off),
 * recorded at `value-functions/<id>/owner.json`; an id with versions but no record was
 * published by the operator (`metricopt train`, `metricopt fit`) and no API caller owns it. A
 * fit job belongs to the principal that created it (`jobs/<id>/owner.json`); to anyone else it
 * does not exist. A new version must keep the id's d, metric and direction, so an unpinned
 * caller never gets another kind of value function under a name it knows.
 */
export type OwnershipErrorCode =
  /** The value function id belongs to another principal (or to the operator). */
  | 'VALUE_FUNCTION_OWNED'
  /** The fit would publish a version with another d, metric or direction than the id's. */
  | 'VALUE_FUNCTION_MISMATCH';

export const OwnershipError = domainErrorClass<OwnershipErrorCode>('OwnershipError');
export type OwnershipError = InstanceType<typeof OwnershipError>;

const ownerSchema = z
  .object({
    format: z.literal('metricopt.owner'),
    schemaVersion: z.literal(1),
    principal: z.string().min(1).max(2048),
    createdAt: z.string(),
  })
  .strict();

async function readOwner(store: ObjectStore, key: string): Promise<string | undefined> {
  const text = await getText(store, key);
  return text === undefined ? undefined : ownerSchema.parse(JSON.parse(text)).principal;
}

/** Records `principal` as the owner under `key` unless another is there; answers the owner. */
async function claim(store: ObjectStore, key: string, principal: string, now: Date): Promise<string> {
  const doc = { format: 'metricopt.owner', schemaVersion: 1, principal, createdAt: now.toISOString() };
  if (await store.putIfAbsent(key, `${JSON.stringify(ownerSchema.parse(doc))}\n`)) return principal;
  return (await readOwner(store, key)) as string;
}

/**
 * Before a fit job is stored: its value function id is the caller's (claimed now when it is
 * new) and the job's metric and direction are the id's. Writes nothing but the claim.
 */
export async function claimValueFunction(
  store: ObjectStore,
  spec: Pick<FitJobSpec, 'metric' | 'output'>,
  principal: string,
  now: () => Date = () => new Date(),
): Promise<Result<void, OwnershipError>> {
  const id = spec.output.valueFunctionId;
  const owned = () =>
    err(
      new OwnershipError('VALUE_FUNCTION_OWNED', `value function '${id}' belongs to someone else; choose another id`),
    );
  let owner = await readOwner(store, valueFunctionOwnerKey(id));
  if (owner === undefined) {
    // Published outside the API: the operator's, never claimable by a caller.
    if ((await listCheckpointVersions(store)).has(id)) return owned();
    owner = await claim(store, valueFunctionOwnerKey(id), principal, now());
  }
  if (owner !== principal) return owned();
  return checkPublishable(store, id, spec.metric);
}

/**
 * A new version of `id` keeps the latest version's metric, direction and (when given) d;
 * an id with no versions takes anything.
 */
export async function checkPublishable(
  store: ObjectStore,
  id: string,
  metric: FitJobSpec['metric'],
  d?: number,
): Promise<Result<void, OwnershipError>> {
  const latest = await loadCheckpoint(store, id);
  if (!latest.ok) return ok(undefined);
  const v = latest.value;
  const differs = [
    v.metric.name !== metric.name ? `metric '${metric.name}' (it is '${v.metric.name}')` : undefined,
    v.metric.direction !== metric.direction ? `direction ${metric.direction} (it is ${v.metric.direction})` : undefined,
    d !== undefined && v.d !== d ? `d = ${d} (it is ${v.d})` : undefined,
  ].filter((x) => x !== undefined);
  if (differs.length === 0) return ok(undefined);
  return err(
    new OwnershipError(
      'VALUE_FUNCTION_MISMATCH',
      `value function '${id}' version ${v.version} has another kind: this fit has ${differs.join(', ')}; publish under another id`,
    ),
  );
}

/** Records the creator of a new fit job (the first one to store its spec). */
export async function claimFitJob(
  store: ObjectStore,
  id: string,
  principal: string,
  now: () => Date = () => new Date(),
): Promise<Result<void, JobError>> {
  const owner = await claim(store, jobKeys(id).owner, principal, now());
  return owner === principal ? ok(undefined) : err(jobNotFound(id));
}

/**
 * The job as `principal` may see it: JOB_NOT_FOUND when another principal created it. A job
 * with no owner record was created outside the API (`metricopt fit`) and is open to callers
 * as before.
 */
export async function requireFitJobOwner(
  store: ObjectStore,
  id: string,
  principal: string,
): Promise<Result<void, JobError>> {
  const owner = await readOwner(store, jobKeys(id).owner);
  return owner === undefined || owner === principal ? ok(undefined) : err(jobNotFound(id));
}

const jobNotFound = (id: string) => new JobError('JOB_NOT_FOUND', `no fit job '${id}'`);
