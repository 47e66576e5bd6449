import { vi } from 'vitest';

/** Real `setImmediate`, taken before any test fakes the timers (it is never faked here). */
const realTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Fakes `setTimeout`/`setInterval` and `Date` (not `setImmediate`, `nextTick` or I/O), runs
 * `work` and settles it: while it is pending, real I/O gets its turns, and whenever the code
 * under test is only waiting on a fake timer the clock jumps to that timer. Returns the value and
 * how many milliseconds passed on the fake clock, which depend on the timers the code set, not
 * on how busy the machine is.
 */
export async function onFakeClock<T>(work: () => Promise<T>): Promise<{ value: T; elapsedMs: number }> {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  try {
    const start = Date.now();
    let settled = false;
    const pending = work().finally(() => {
      settled = true;
    });
    pending.catch(() => {});
    while (!settled) {
      // A few real turns first, so I/O already under way finishes before the clock moves.
      for (let i = 0; i < 5 && !settled; i++) await realTurn();
      if (!settled && vi.getTimerCount() > 0) await vi.advanceTimersToNextTimerAsync();
    }
    return { value: await pending, elapsedMs: Date.now() - start };
  } finally {
    vi.useRealTimers();
  }
}
