import { holdLease, type Queue, type QueueMessage } from '../ports/queue.port.js';

/**
 * The one receive loop of the queue workers (the trainer worker on the jobs queue, the local
 * evaluator worker on the evaluation queue): receive, hold each message's lease while its handler
 * works, let the handler settle it, until the signal stops it or the queue stays idle too long.
 */
export interface ConsumeOptions {
  queue: Queue;
  /** Messages received per poll, handled concurrently (default 1). */
  batchSize?: number | undefined;
  /** Long-poll wait per receive (default 1 s). */
  waitMs?: number | undefined;
  /**
   * Lease on each received message: received with this visibility and extended every third of
   * it while its handler runs (a worker that dies lets it go within this). Absent: the queue's
   * own visibility timeout, never extended.
   */
  leaseMs?: number | undefined;
  /** Stops the loop after the messages in hand. */
  signal?: AbortSignal | undefined;
  /** Return after this long without a message (absent: run until the signal). */
  idleExitMs?: number | undefined;
  /** The queue answered that a held message is no longer this worker's, or an extension failed. */
  onLeaseLost?: ((message: QueueMessage) => void) | undefined;
  onLeaseError?: ((message: QueueMessage, e: unknown) => void) | undefined;
}

/** How a handler settles the message it holds: each call stops the message's lease first. */
export type Settle = Pick<Queue, 'ack' | 'release' | 'deadLetter'>;

/** Thrown by a handler (after settling its message) to end the loop: the worker is stopping. */
export class StopConsuming extends Error {
  constructor() {
    super('the worker stops');
    this.name = 'StopConsuming';
  }
}

/** Runs the loop; answers how many messages were handled and whether a handler stopped it. */
export async function consumeQueue(
  options: ConsumeOptions,
  handle: (message: QueueMessage, settle: Settle) => Promise<void>,
): Promise<{ handled: number; stopped: boolean }> {
  const { queue, leaseMs } = options;
  let handled = 0;
  let stopped = false;
  let idleSince = performance.now();
  const one = async (message: QueueMessage) => {
    const lease =
      leaseMs === undefined
        ? undefined
        : holdLease(queue, message.receipt, leaseMs / 1000, {
            onLost: () => options.onLeaseLost?.(message),
            onError: (e) => options.onLeaseError?.(message, e),
          });
    const settle: Settle = {
      ack: async (receipt) => {
        await lease?.stop();
        await queue.ack(receipt);
      },
      release: async (receipt, delayMs) => {
        await lease?.stop();
        await queue.release(receipt, delayMs);
      },
      deadLetter: async (m, reason) => {
        await lease?.stop();
        await queue.deadLetter(m, reason);
      },
    };
    try {
      await handle(message, settle);
      handled++;
    } catch (e) {
      if (!(e instanceof StopConsuming)) throw e;
      handled++;
      stopped = true;
    } finally {
      await lease?.stop();
    }
  };
  while (!stopped && !options.signal?.aborted) {
    const messages = await queue.receive({
      max: options.batchSize ?? 1,
      waitMs: options.waitMs ?? 1000,
      ...(leaseMs === undefined ? {} : { visibilityTimeoutMs: leaseMs }),
    });
    if (messages.length === 0) {
      if (options.idleExitMs !== undefined && performance.now() - idleSince >= options.idleExitMs) break;
      continue;
    }
    await Promise.all(messages.map(one));
    idleSince = performance.now();
  }
  return { handled, stopped };
}
