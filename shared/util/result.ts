/** Expected failures are values inside the core; exceptions are for bugs and infrastructure faults. */
export type Result<T, E = DomainError> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const err = <E>(error: E): { ok: false; error: E } => ({ ok: false, error });

/**
 * A failure the user can act on: a stable code (one union per module) plus a one-line message
 * naming the problem. `retryable`: the same operation may succeed when tried again (another
 * delivery, later), which queue workers decide on instead of matching codes or messages.
 */
export class DomainError<C extends string = string> extends Error {
  readonly retryable: boolean;

  constructor(
    readonly code: C,
    message: string,
    readonly details?: unknown,
    options: { retryable?: boolean } = {},
  ) {
    super(message);
    this.name = 'DomainError';
    this.retryable = options.retryable ?? false;
  }
}

/**
 * The error class of one module: its name (the `name` of its errors, for `instanceof` and logs),
 * its code union and the codes worth a retry. Every module's errors are built by this one class.
 */
export function domainErrorClass<C extends string>(name: string, retryableCodes: readonly C[] = []) {
  const retryable = new Set<string>(retryableCodes);
  return class extends DomainError<C> {
    constructor(code: C, message: string, details?: unknown) {
      super(code, message, details, { retryable: retryable.has(code) });
      this.name = name;
    }
  };
}

/** Unwraps a Result at an edge where a failure should end the operation. */
export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw result.error;
  return result.value;
}
