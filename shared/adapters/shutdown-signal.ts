/** A process's stop request (SIGTERM from ECS or `docker stop`, SIGINT from a terminal) as an AbortSignal. */
export interface ShutdownSignal {
  readonly signal: AbortSignal;
  /** Removes the handlers (the process's default reaction to a later signal returns). */
  dispose(): void;
}

/**
 * The one way entry points turn SIGTERM / SIGINT into cancellation: the first of them aborts
 * `signal` (after `onStop`, which may say what happens next); either handler is removed on use.
 */
export function shutdownSignal(onStop?: (signal: NodeJS.Signals) => void): ShutdownSignal {
  const stop = new AbortController();
  const handler = (signal: NodeJS.Signals): void => {
    if (stop.signal.aborted) return;
    onStop?.(signal);
    stop.abort();
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
  return {
    signal: stop.signal,
    dispose: () => {
      process.off('SIGTERM', handler);
      process.off('SIGINT', handler);
    },
  };
}
