import { denormalise } from '../../metrics/evaluator.js';
import { defaultGuidedEs, guidedEsDirection } from '../../method/guided-es.js';
import type { GuideRequest, ValueFunctionSummary } from '../../schemas/api.js';
import type { ValueFunctionCheckpoint } from '../../schemas/checkpoint.js';
import { Rng } from '../../util/random.js';
import { DomainError, err, ok, type Result } from '../../util/result.js';
import { healthyOf } from '../../storage/value-function-store.js';
import { ServeErrorCode } from './serve-errors.js';
import type { InvalidCheckpoint, ServedValueFunction, ValueFunctionCatalog } from './value-function-catalog.js';

/**
 * Serving guidance from value-function checkpoints: predict, gradient and the Guided-ES
 * direction, over a cache of compiled checkpoints. Free of HTTP: the value API
 * (functions/value-api) validates the wire format, calls these and chooses statuses.
 */

// The serving feature's surface: the catalog and the error codes live beside this file.
export { ServeErrorCode } from './serve-errors.js';
export {
  type CatalogOptions,
  type InvalidCheckpoint,
  type ServedValueFunction,
  ValueFunctionCatalog,
} from './value-function-catalog.js';

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
  const out = new Float32Array(rows.length * d);
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
  const out = new Float32Array(normalised.length);
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
