import { DomainError, err, ok, type Result } from '../util/result.js';
import { getText, type ObjectStore } from '../ports/object-store.port.js';
import { type ValueFunctionCheckpoint, valueFunctionCheckpointSchema } from '../schemas/checkpoint.js';
import { CHECKPOINT_PREFIX, checkpointKey, parseCheckpointKey } from './layout.js';
import { issueLine } from '../schemas/zod-issue.js';

/**
 * The checkpoint repository: value-function checkpoints in an object store,
 * `value-functions/<id>/v<000001>.json` (layout.ts). Versions only grow; the latest is the
 * highest, so a newly written version is served without a restart by whoever lists again.
 */

/** A value function is healthy when its held-out Spearman is at least this (the CLI's and the API's flag). */
export const HEALTHY_SPEARMAN = 0.7;

/** The health flag of a held-out Spearman: null when none was measured. */
export const healthyOf = (spearman: number | null | undefined): boolean | null =>
  spearman === null || spearman === undefined ? null : spearman >= HEALTHY_SPEARMAN;

/** All checkpoint ids with their versions, ascending. */
export async function listCheckpointVersions(store: ObjectStore): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const key of await store.list(CHECKPOINT_PREFIX)) {
    const parsed = parseCheckpointKey(key);
    if (!parsed) continue;
    const versions = out.get(parsed.id) ?? [];
    versions.push(parsed.version);
    out.set(parsed.id, versions);
  }
  for (const v of out.values()) v.sort((a, b) => a - b);
  return out;
}

/** Saves the checkpoint as the next version of its id (an exclusive create, so racing writers never overwrite). */
export async function saveCheckpoint(
  store: ObjectStore,
  checkpoint: Omit<ValueFunctionCheckpoint, 'version'>,
): Promise<ValueFunctionCheckpoint> {
  const versions = (await listCheckpointVersions(store)).get(checkpoint.id) ?? [];
  let version = (versions[versions.length - 1] ?? 0) + 1;
  for (;;) {
    const full = valueFunctionCheckpointSchema.parse({ ...checkpoint, version });
    if (await store.putIfAbsent(checkpointKey(full.id, version), JSON.stringify(full))) return full;
    version++;
  }
}

/** Loads a checkpoint version (the latest when `version` is omitted). */
export async function loadCheckpoint(
  store: ObjectStore,
  id: string,
  version?: number,
): Promise<Result<ValueFunctionCheckpoint, DomainError>> {
  let v = version;
  if (v === undefined) {
    const versions = (await listCheckpointVersions(store)).get(id);
    v = versions?.[versions.length - 1];
    if (v === undefined) return err(new DomainError('VALUE_FUNCTION_NOT_FOUND', `value function '${id}' not found`));
  }
  const text = await getText(store, checkpointKey(id, v));
  if (text === undefined) {
    return err(new DomainError('VALUE_FUNCTION_NOT_FOUND', `value function '${id}' has no version ${v}`));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return err(
      new DomainError(
        'CHECKPOINT_INVALID',
        `checkpoint ${checkpointKey(id, v)} is not JSON (truncated?): ${(e as Error).message.slice(0, 120)}`,
      ),
    );
  }
  const parsed = valueFunctionCheckpointSchema.safeParse(json);
  if (!parsed.success) {
    return err(
      new DomainError(
        'CHECKPOINT_INVALID',
        `checkpoint ${checkpointKey(id, v)} is invalid: ${issueLine(parsed.error)}`,
      ),
    );
  }
  return ok(parsed.data);
}
