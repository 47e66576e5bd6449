/**
 * A work queue with SQS semantics (SQS in the cloud, a folder on one machine):
 * - a received message is invisible to other receivers for the visibility timeout, then is
 *   delivered again unless it was acknowledged (deleted);
 * - every delivery increments the message's receive count; a receive that would exceed the
 *   queue's max receive count moves the message to the dead-letter queue instead;
 * - delivery is at least once: consumers must be idempotent.
 */
export interface QueueMessage {
  /** Stable id of the message across deliveries. */
  readonly id: string;
  /** Handle of this delivery; acknowledge, release or dead-letter with it. */
  readonly receipt: string;
  readonly body: string;
  /** 1 on the first delivery. */
  readonly receiveCount: number;
}

export interface ReceiveOptions {
  /** At most this many messages (SQS: 1..10). */
  max: number;
  /** Long poll: wait up to this long for a first message (0 = return at once). */
  waitMs?: number;
  /** Override the queue's visibility timeout for these deliveries. */
  visibilityTimeoutMs?: number;
}

export interface DeadLetter {
  readonly id: string;
  readonly body: string;
  readonly receiveCount: number;
  /** Why it was dead-lettered, when the consumer said (a redrive after max receives says nothing). */
  readonly reason?: string;
}

export interface Queue {
  /** A human-readable location, e.g. `file:///tmp/queue` or the SQS queue URL. */
  readonly location: string;
  /** Enqueues the bodies; returns their message ids in order. */
  send(bodies: string[]): Promise<string[]>;
  receive(options: ReceiveOptions): Promise<QueueMessage[]>;
  /** Done with the message: it is deleted. A stale receipt (the message was redelivered) is ignored. */
  ack(receipt: string): Promise<void>;
  /** Not done: the message becomes visible again after `delayMs` (0 = now) and counts one more receive when it is. */
  release(receipt: string, delayMs?: number): Promise<void>;
  /**
   * Keeps this delivery invisible for `seconds` from now (SQS ChangeMessageVisibility; SQS counts
   * whole seconds and holds a message at most 12 hours from its receive). The receipt stays valid
   * for ack, release and dead-letter. Answers false when the queue says the delivery is no longer
   * held (the local queue: acked, or its visibility ran out and it was taken back; SQS: when it
   * reports the receipt invalid, which it need not do for a receipt of an earlier delivery).
   */
  extend(receipt: string, seconds: number): Promise<boolean>;
  /** Moves this delivery's message to the dead-letter queue at once, with the reason recorded. */
  deadLetter(message: QueueMessage, reason: string): Promise<void>;
  /** Approximate counts, for progress and tests. */
  counts(): Promise<{ visible: number; inFlight: number; deadLetters: number }>;
  /** Messages in the dead-letter queue (a peek: they stay there). */
  listDeadLetters(max?: number): Promise<DeadLetter[]>;
}

/** A delivery kept invisible on a timer while its worker works on it (see `holdLease`). */
export interface Lease {
  /** True once an extension answered that the delivery is no longer held. */
  readonly lost: boolean;
  /** Stops extending; resolves once no extension is in flight (then ack, release or dead-letter). */
  stop(): Promise<void>;
}

/**
 * Extends the delivery to `seconds` every third of that, until `stop()`: a worker holding a
 * message for longer than its visibility timeout keeps it, and a worker that dies stops
 * extending, so the message comes back within `seconds`. Receive the message with the same
 * visibility (`ReceiveOptions.visibilityTimeoutMs`), so the first extension comes in time.
 * `onLost` is called once if the queue answers that the delivery is no longer held; a failed
 * call (the network) is reported to `onError` and tried again on the next tick.
 */
export function holdLease(
  queue: Pick<Queue, 'extend'>,
  receipt: string,
  seconds: number,
  hooks: { onLost?: () => void; onError?: (e: unknown) => void } = {},
): Lease {
  let lost = false;
  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  const timer = setInterval(
    () => {
      if (stopped || lost) return;
      inFlight = queue.extend(receipt, seconds).then(
        (held) => {
          if (!held && !stopped && !lost) {
            lost = true;
            clearInterval(timer);
            hooks.onLost?.();
          }
        },
        (e: unknown) => hooks.onError?.(e),
      );
    },
    Math.max(10, (seconds * 1000) / 3),
  );
  timer.unref?.();
  return {
    get lost() {
      return lost;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await inFlight;
    },
  };
}
