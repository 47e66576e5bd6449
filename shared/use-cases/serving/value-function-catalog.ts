import { CompiledValueFunction } from '../../method/value-function-f32.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { ValueFunctionCheckpoint } from '../../schemas/checkpoint.js';
import { DomainError, err, ok, type Result } from '../../util/result.js';
import { listCheckpointVersions, loadCheckpoint } from '../../storage/value-function-store.js';
import { ServeErrorCode } from './serve-errors.js';

/** A listed checkpoint version the catalog could not serve, as reported by `invalidCheckpoints()`. */
export interface InvalidCheckpoint {
  id: string;
  version: number;
  /** CHECKPOINT_INVALID, or VERSION_NOT_FOUND when the listed object is gone from the store. */
  code: string;
  message: string;
  /** When it was first found bad (ISO 8601). */
  since: string;
}

/** A checkpoint ready to serve. Immutable: a new version is a new entry. */
export interface ServedValueFunction {
  readonly id: string;
  readonly version: number;
  readonly checkpoint: ValueFunctionCheckpoint;
  readonly compiled: CompiledValueFunction;
}

export interface CatalogOptions {
  /** How stale the list of ids and versions may get before it is listed again (default 1000 ms). */
  refreshIntervalMs?: number;
  /** How many compiled checkpoints to keep (least recently used are dropped; default 64). */
  maxCompiled?: number;
  /**
   * How long a version found invalid is skipped before it is read again (default 60 s):
   * checkpoints are immutable, so this only matters when an operator repairs one in place.
   */
  invalidRetryMs?: number;
  /** Called once when a version is first found invalid (the value API logs it). */
  onInvalidCheckpoint?: (invalid: InvalidCheckpoint) => void;
  now?: () => number;
}

/**
 * The checkpoints of an object store, compiled on first use and cached. The latest version of
 * each id comes from a listing of the store that is at most `refreshIntervalMs` old; a stale
 * listing is refreshed in the background (requests never wait for it) except when a request
 * names an id or version the listing does not know, which waits for one fresh listing before
 * answering 404. So a newly written version is served within about one interval, without a
 * restart, and a stream of unknown ids costs at most one listing per interval.
 *
 * A version that cannot be loaded (truncated or schema-invalid JSON, a listed object gone from
 * the store) is remembered as invalid, reported once through `onInvalidCheckpoint`, and skipped:
 * unpinned requests get the newest version that loads, pinned ones get CHECKPOINT_INVALID (or
 * VERSION_NOT_FOUND when the object is gone); the store is not read for it again before
 * `invalidRetryMs`. `invalidCheckpoints()` lists them for health reports.
 */
export class ValueFunctionCatalog {
  private readonly refreshIntervalMs: number;
  private readonly maxCompiled: number;
  private readonly now: () => number;
  private listing: Map<string, number[]> | undefined;
  private listedAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<Map<string, number[]>> | undefined;
  /** Compiled checkpoints by id and version; eviction is least recently used (rare, so a scan). */
  private readonly compiled = new Map<string, Map<number, CacheEntry>>();
  private size = 0;
  private clock = 0;
  private readonly loading = new Map<string, Promise<Result<ServedValueFunction>>>();
  /** Versions found invalid, by id and version. */
  private readonly invalid = new Map<string, Map<number, InvalidEntry>>();
  private readonly invalidRetryMs: number;
  private readonly onInvalidCheckpoint: ((invalid: InvalidCheckpoint) => void) | undefined;

  constructor(
    readonly store: ObjectStore,
    options: CatalogOptions = {},
  ) {
    this.refreshIntervalMs = options.refreshIntervalMs ?? 1000;
    this.maxCompiled = options.maxCompiled ?? 64;
    this.now = options.now ?? Date.now;
    this.invalidRetryMs = options.invalidRetryMs ?? 60_000;
    this.onInvalidCheckpoint = options.onInvalidCheckpoint;
  }

  /** The versions found invalid that the current listing still has, by id, then version. */
  invalidCheckpoints(): InvalidCheckpoint[] {
    const out: InvalidCheckpoint[] = [];
    for (const byVersion of this.invalid.values()) for (const entry of byVersion.values()) out.push(entry.info);
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.version - b.version));
  }

  /**
   * The version an unpinned request gets: the newest listed one not known to be invalid (a
   * known-invalid one whose retry time has come counts as not known).
   */
  private servable(id: string, versions: readonly number[]): number | undefined {
    const bad = this.invalid.size === 0 ? undefined : this.invalid.get(id);
    for (let i = versions.length - 1; i >= 0; i--) {
      const v = versions[i] as number;
      if (bad === undefined || !this.skipped(bad.get(v))) return v;
    }
    return undefined;
  }

  private skipped(entry: InvalidEntry | undefined): entry is InvalidEntry {
    return entry !== undefined && this.now() - entry.checkedAt <= this.invalidRetryMs;
  }

  private knownInvalid(id: string, version: number): InvalidEntry | undefined {
    const entry = this.invalid.size === 0 ? undefined : this.invalid.get(id)?.get(version);
    return this.skipped(entry) ? entry : undefined;
  }

  /** Records a failed load; reports it the first time (or when the reason changed). */
  private markInvalid(id: string, version: number, error: DomainError): void {
    let byVersion = this.invalid.get(id);
    if (byVersion === undefined) {
      byVersion = new Map();
      this.invalid.set(id, byVersion);
    }
    const previous = byVersion.get(version);
    const code = error.code === ServeErrorCode.checkpointInvalid ? error.code : ServeErrorCode.versionNotFound;
    const message =
      code === ServeErrorCode.versionNotFound
        ? `value function '${id}' version ${version} is listed but missing from the store`
        : error.message;
    const info: InvalidCheckpoint = {
      id,
      version,
      code,
      message,
      since: previous?.info.since ?? new Date(this.now()).toISOString(),
    };
    byVersion.set(version, { info, checkedAt: this.now() });
    if (previous?.info.message !== message) this.onInvalidCheckpoint?.(info);
  }

  /** Ids and their versions (ascending), from a listing at most one interval old (plus one request). */
  async versions(): Promise<Map<string, number[]>> {
    if (this.listing === undefined) return this.refresh();
    if (this.now() - this.listedAt > this.refreshIntervalMs) this.refreshInBackground();
    return this.listing;
  }

  /** Lists the store now (one listing in flight at a time). */
  refresh(): Promise<Map<string, number[]>> {
    if (this.refreshing) return this.refreshing;
    const started = this.now();
    this.refreshing = listCheckpointVersions(this.store)
      .then((listing) => {
        this.listing = listing;
        this.listedAt = started;
        // Forget invalid versions that are no longer listed (deleted by an operator).
        for (const [id, byVersion] of this.invalid) {
          const listed = listing.get(id) ?? [];
          for (const v of byVersion.keys()) if (!listed.includes(v)) byVersion.delete(v);
          if (byVersion.size === 0) this.invalid.delete(id);
        }
        return listing;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  private refreshInBackground(): void {
    // A failed background listing keeps the previous one; the next request tries again.
    this.refresh().catch(() => undefined);
  }

  /** The checkpoint `version` of `id` (the latest when omitted), compiled. */
  resolve(id: string, version?: number): Promise<Result<ServedValueFunction>> {
    const hit = this.cached(id, version);
    return hit !== undefined ? Promise.resolve(ok(hit)) : this.resolveSlow(id, version);
  }

  /**
   * The hit path of `resolve`, synchronous and allocation-free: the checkpoint when the current
   * listing knows `id` (and `version`) and it is already compiled, otherwise undefined (then call
   * `resolve`). Nearly every request of a busy server ends here; a stale listing is refreshed in
   * the background as in `resolve`.
   */
  cached(id: string, version?: number): ServedValueFunction | undefined {
    const listing = this.listing;
    if (listing === undefined) return undefined;
    const versions = listing.get(id);
    if (versions === undefined || versions.length === 0) return undefined;
    const v = version ?? this.servable(id, versions);
    if (v === undefined) return undefined;
    const hit = this.compiled.get(id)?.get(v);
    if (hit === undefined || (version !== undefined && !versions.includes(v))) return undefined;
    if (this.now() - this.listedAt > this.refreshIntervalMs) this.refreshInBackground();
    hit.lastUsed = ++this.clock;
    return hit.served;
  }

  private async resolveSlow(id: string, version?: number): Promise<Result<ServedValueFunction>> {
    let versions = (await this.versions()).get(id);
    if (versions === undefined || (version !== undefined && !versions.includes(version))) {
      // Unknown to this listing: look once more before answering 404, at most once per interval.
      if (this.refreshing || this.now() - this.listedAt > this.refreshIntervalMs) {
        versions = (await this.refresh()).get(id);
      }
    }
    if (versions === undefined || versions.length === 0) {
      return err(new DomainError(ServeErrorCode.valueFunctionNotFound, `value function '${id}' not found`));
    }
    if (version !== undefined) {
      if (!versions.includes(version)) {
        return err(
          new DomainError(
            ServeErrorCode.versionNotFound,
            `value function '${id}' has no version ${version} (versions: ${versions.join(', ')})`,
          ),
        );
      }
      const bad = this.knownInvalid(id, version);
      return bad === undefined ? this.load(id, version) : err(new DomainError(bad.info.code, bad.info.message));
    }
    // Unpinned: the newest version that loads; a bad newest one is skipped, not served as a 500.
    for (let v = this.servable(id, versions); v !== undefined; v = this.servable(id, versions)) {
      const loaded = await this.load(id, v);
      if (loaded.ok || this.knownInvalid(id, v) === undefined) return loaded;
    }
    const newest = versions[versions.length - 1] as number;
    return err(
      new DomainError(
        ServeErrorCode.checkpointInvalid,
        `value function '${id}' has no valid version (versions: ${versions.join(', ')}; v${newest}: ${this.knownInvalid(id, newest)?.info.message ?? 'invalid'})`,
      ),
    );
  }

  private async load(id: string, version: number): Promise<Result<ServedValueFunction>> {
    const hit = this.compiled.get(id)?.get(version);
    if (hit) {
      hit.lastUsed = ++this.clock;
      return ok(hit.served);
    }
    const key = `${id}@${version}`;
    let pending = this.loading.get(key);
    if (!pending) {
      pending = loadCheckpoint(this.store, id, version).then((loaded): Result<ServedValueFunction> => {
        if (!loaded.ok) {
          // Listed but unreadable (missing) or invalid: remembered, so it is not read per request.
          if (
            loaded.error.code === ServeErrorCode.checkpointInvalid ||
            loaded.error.code === 'VALUE_FUNCTION_NOT_FOUND'
          ) {
            this.markInvalid(id, version, loaded.error);
            const info = this.invalid.get(id)?.get(version)?.info as InvalidCheckpoint;
            return err(new DomainError(info.code, info.message));
          }
          return loaded;
        }
        let compiled: CompiledValueFunction;
        try {
          compiled = new CompiledValueFunction(loaded.value);
        } catch (e) {
          const error = new DomainError(
            ServeErrorCode.checkpointInvalid,
            `checkpoint ${id} v${version} cannot be compiled: ${e instanceof Error ? e.message : String(e)}`,
          );
          this.markInvalid(id, version, error);
          return err(error);
        }
        this.invalid.get(id)?.delete(version);
        const served = { id, version, checkpoint: loaded.value, compiled };
        this.remember(served);
        return ok(served);
      });
      this.loading.set(key, pending);
      pending.finally(() => this.loading.delete(key)).catch(() => undefined);
    }
    return pending;
  }

  /** Caches a compiled checkpoint, dropping the least recently used beyond `maxCompiled`. */
  private remember(served: ServedValueFunction): void {
    let byVersion = this.compiled.get(served.id);
    if (!byVersion) {
      byVersion = new Map();
      this.compiled.set(served.id, byVersion);
    }
    byVersion.set(served.version, { served, lastUsed: ++this.clock });
    this.size++;
    while (this.size > this.maxCompiled) {
      let oldest: { id: string; version: number; lastUsed: number } | undefined;
      for (const [id, versions] of this.compiled) {
        for (const [v, entry] of versions) {
          if (!oldest || entry.lastUsed < oldest.lastUsed) oldest = { id, version: v, lastUsed: entry.lastUsed };
        }
      }
      if (!oldest) break;
      const versions = this.compiled.get(oldest.id) as Map<number, CacheEntry>;
      versions.delete(oldest.version);
      if (versions.size === 0) this.compiled.delete(oldest.id);
      this.size--;
    }
  }
}

interface CacheEntry {
  served: ServedValueFunction;
  lastUsed: number;
}

interface InvalidEntry {
  info: InvalidCheckpoint;
  /** When the store was last read for it (catalog clock). */
  checkedAt: number;
}
