import { denormalise } from '../../metrics/evaluator.js';
import { defaultGuidedEs, guidedEsDirection } from '../../method/guided-es.js';
import { CompiledValueFunction } from '../../method/value-function-f32.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { GuideRequest, ValueFunctionSummary } from '../../schemas/api.js';
import type { ValueFunctionCheckpoint } from '../../schemas/checkpoint.js';
import { Rng } from '../../util/random.js';
import { slabFloat32 } from '../../util/slab.js';
import { DomainError, err, ok, type Result } from '../../util/result.js';
import { healthyOf, listCheckpointVersions, loadCheckpoint } from '../../storage/value-function-store.js';

/**
 * Serving guidance from value-function checkpoints: predict, gradient and the Guided-ES
 * direction, over a cache of compiled checkpoints. Free of HTTP: the value API
 * (functions/value-api) validates the wire format, calls these and chooses statuses.
 */

/** Stable codes of the expected failures; the HTTP edge maps each to a status. */
export const ServeErrorCode = {
  valueFunctionNotFound: 'VALUE_FUNCTION_NOT_FOUND',
  versionNotFound: 'VERSION_NOT_FOUND',
  dimensionMismatch: 'DIMENSION_MISMATCH',
  emptyBatch: 'EMPTY_BATCH',
  notFinite: 'NOT_FINITE',
  tooManyRows: 'TOO_MANY_ROWS',
  /** A listed checkpoint version that cannot be served (truncated, schema-invalid, or not compilable). */
  checkpointInvalid: 'CHECKPOINT_INVALID',
} as const;

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

/**
 * phi as it arrives: JSON arrays (one row or a batch) or packed float32 rows (the binary form,
 * or JSON already read into rows: then `single` says whether it was one phi).
 */
export type PhiInput =
  | { kind: 'json'; phi: number[] | number[][] }
  | { kind: 'float32'; data: Float32Array; single?: boolean };

export interface ServeLimits {
  /** Most rows in one predict/gradient batch. */
  maxRows: number;
}

export interface BatchResult {
  served: ServedValueFunction;
  n: number;
  /** True when the request sent one phi (not a batch of one). */
  single: boolean;
  /** Lower-is-better estimates, one per row. */
  normalised: Float32Array;
  /** The same in the metric's natural direction, rounded to float32 like the values it comes from. */
  natural: Float32Array;
}

export interface GradientResult extends BatchResult {
  /** d(normalised)/d(phi), row-major n x d. */
  gradients: Float32Array;
}

export interface GuideResult {
  served: ServedValueFunction;
  direction: Float32Array;
  normalised: number;
  natural: number;
  P: number;
  sigma2: number;
  seed: number;
}

export class GuidanceService {
  constructor(
    readonly catalog: ValueFunctionCatalog,
    readonly limits: ServeLimits,
  ) {}

  async list(): Promise<ValueFunctionSummary[]> {
    const out: ValueFunctionSummary[] = [];
    for (const id of [...(await this.catalog.versions()).keys()].sort()) {
      const summary = await this.describe(id);
      if (summary.ok) out.push(summary.value);
    }
    return out;
  }

  async describe(id: string): Promise<Result<ValueFunctionSummary>> {
    const served = await this.catalog.resolve(id);
    if (!served.ok) return served;
    const versions = (await this.catalog.versions()).get(id) ?? [served.value.version];
    const invalid = this.catalog.invalidCheckpoints().filter((c) => c.id === id);
    return ok(summarise(served.value.checkpoint, versions, invalid));
  }

  async predict(id: string, version: number | undefined, input: PhiInput): Promise<Result<BatchResult>> {
    const resolved = await this.catalog.resolve(id, version);
    return resolved.ok ? this.predictOn(resolved.value, input) : resolved;
  }

  async gradient(id: string, version: number | undefined, input: PhiInput): Promise<Result<GradientResult>> {
    const resolved = await this.catalog.resolve(id, version);
    return resolved.ok ? this.gradientOn(resolved.value, input) : resolved;
  }

  /** `predict` on a checkpoint already resolved (e.g. by `catalog.cached`); synchronous. */
  predictOn(served: ServedValueFunction, input: PhiInput): Result<BatchResult> {
    const prepared = this.prepare('predict', served, input);
    if (!prepared.ok) return prepared;
    const { rows, n, single } = prepared.value;
    const normalised = served.compiled.predict(rows, n);
    if (!allFinite(normalised)) return err(overflow('predict'));
    return ok({ served, n, single, normalised, natural: toNatural(served, normalised) });
  }

  /** `gradient` on a checkpoint already resolved (e.g. by `catalog.cached`); synchronous. */
  gradientOn(served: ServedValueFunction, input: PhiInput): Result<GradientResult> {
    const prepared = this.prepare('gradient', served, input);
    if (!prepared.ok) return prepared;
    const { rows, n, single } = prepared.value;
    const { values, gradients } = served.compiled.predictWithGradients(rows, n);
    if (!allFinite(values) || !allFinite(gradients)) return err(overflow('gradient'));
    return ok({ served, n, single, normalised: values, natural: toNatural(served, values), gradients });
  }

  /** One Guided-ES step's direction (MetricOpt Eq. 3-4) at phi, scored with the value function. */
  async guide(id: string, version: number | undefined, request: GuideRequest): Promise<Result<GuideResult>> {
    const resolved = await this.catalog.resolve(id, version);
    if (!resolved.ok) return resolved;
    const served = resolved.value;
    const phi = toRows('guide', 'phi', served, [request.phi], 0);
    if (!phi.ok) return phi;
    const gradients: Float32Array[] = [];
    for (const [i, g] of request.lossGradients.entries()) {
      const row = toRows('guide', `lossGradients[${i}]`, served, [g], 0);
      if (!row.ok) return row;
      gradients.push(row.value);
    }
    const P = request.P ?? defaultGuidedEs.P;
    const sigma2 = request.sigma2 ?? defaultGuidedEs.sigma2;
    const seed = request.seed ?? Math.floor(Math.random() * 2 ** 32);
    const f = served.compiled;
    const direction = guidedEsDirection((x) => f.value(x), phi.value, gradients, { P, sigma2 }, new Rng(seed));
    const normalised = f.value(phi.value);
    if (!Number.isFinite(Math.fround(normalised)) || !allFinite(direction)) return err(overflow('guide'));
    return ok({
      served,
      direction,
      normalised,
      natural: denormalise(normalised, served.checkpoint.metric.direction),
      P,
      sigma2,
      seed,
    });
  }

  private prepare(
    op: string,
    served: ServedValueFunction,
    input: PhiInput,
  ): Result<{ rows: Float32Array; n: number; single: boolean }> {
    const d = served.compiled.d;
    const id = served.id;
    if (input.kind === 'float32') {
      const data = input.data;
      if (data.length === 0) return err(new DomainError(ServeErrorCode.emptyBatch, `${op}: the body has no rows`));
      if (data.length % d !== 0) {
        return err(
          new DomainError(
            ServeErrorCode.dimensionMismatch,
            `${op}: body has ${data.length} float32 values, not a multiple of d = ${d} of value function '${id}'`,
          ),
        );
      }
      const n = data.length / d;
      if (n > this.limits.maxRows) return err(tooManyRows(op, n, this.limits.maxRows));
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i] as number)) {
          return err(
            new DomainError(ServeErrorCode.notFinite, `${op}: phi[${Math.floor(i / d)}][${i % d}] is ${data[i]}`),
          );
        }
      }
      return ok({ rows: data, n, single: input.single === true && n === 1 });
    }
    const phi = input.phi;
    if (phi.length === 0) return err(new DomainError(ServeErrorCode.emptyBatch, `${op}: phi is empty`));
    const single = typeof phi[0] === 'number';
    const rows = single ? [phi as number[]] : (phi as number[][]);
    if (rows.length > this.limits.maxRows) return err(tooManyRows(op, rows.length, this.limits.maxRows));
    const packed = toRows(op, 'phi', served, rows, single ? 0 : rows.length);
    if (!packed.ok) return packed;
    return ok({ rows: packed.value, n: rows.length, single });
  }
}

/** Inputs that are finite but huge can overflow the network; say so instead of answering NaN. */
function overflow(op: string): DomainError {
  return new DomainError(
    ServeErrorCode.notFinite,
    `${op}: the value function overflows float32 at this phi (inputs too large)`,
  );
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i] as number)) return false;
  return true;
}

function tooManyRows(op: string, n: number, max: number): DomainError {
  return new DomainError(ServeErrorCode.tooManyRows, `${op}: batch has ${n} rows, at most ${max} are allowed`);
}

/**
 * Packs rows into a row-major Float32Array, checking each has d entries that are finite as
 * float32. `indexed` = 0 names the argument plainly (one vector), otherwise `name[r]`.
 */
function toRows(
  op: string,
  name: string,
  served: ServedValueFunction,
  rows: readonly (readonly number[])[],
  indexed: number,
): Result<Float32Array> {
  const d = served.compiled.d;
  const out = slabFloat32(rows.length * d);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as readonly number[];
    const label = indexed ? `${name}[${r}]` : name;
    if (row.length !== d) {
      return err(
        new DomainError(
          ServeErrorCode.dimensionMismatch,
          `${op}: ${label} has ${row.length} entries, value function '${served.id}' expects ${d}`,
          { expected: d, actual: row.length, row: indexed ? r : undefined },
        ),
      );
    }
    const base = r * d;
    for (let i = 0; i < d; i++) {
      const x = row[i] as number;
      out[base + i] = x;
      if (!Number.isFinite(out[base + i] as number)) {
        return err(new DomainError(ServeErrorCode.notFinite, `${op}: ${label}[${i}] = ${x} is not a finite float32`));
      }
    }
  }
  return ok(out);
}

function toNatural(served: ServedValueFunction, normalised: Float32Array): Float32Array {
  const direction = served.checkpoint.metric.direction;
  const out = slabFloat32(normalised.length);
  for (let i = 0; i < normalised.length; i++) out[i] = denormalise(normalised[i] as number, direction);
  return out;
}

export function summarise(
  checkpoint: ValueFunctionCheckpoint,
  versions: readonly number[],
  invalid: readonly InvalidCheckpoint[] = [],
): ValueFunctionSummary {
  return {
    id: checkpoint.id,
    versions: [...versions],
    latest: versions[versions.length - 1] ?? checkpoint.version,
    serving: checkpoint.version,
    ...(invalid.length === 0
      ? {}
      : { invalidVersions: invalid.map(({ version, code, message, since }) => ({ version, code, message, since })) }),
    d: checkpoint.d,
    metric: checkpoint.metric,
    recipe: checkpoint.recipe,
    dataset: checkpoint.dataset,
    adapter: checkpoint.adapter,
    members: checkpoint.members.length,
    createdAt: checkpoint.createdAt,
    training: checkpoint.training,
    healthy: healthyOf(checkpoint.training.spearman),
  };
}
