import { beforeEach, describe, expect, it } from 'vitest';
import { holdLease, type Queue } from '../../shared/ports/queue.port.js';

/** What every Queue adapter must do; run against the local queue and SQS (moto). */
export interface QueueUnderTest {
  queue: Queue;
  /** The adapter's granularity: SQS counts visibility in whole seconds. */
  visibilityTimeoutMs: number;
}

export function describeQueueContract(
  name: string,
  /** A fresh, empty queue with max receive count 2. */
  make: () => Promise<QueueUnderTest>,
): void {
  describe(`Queue contract: ${name}`, () => {
    let q: QueueUnderTest;
    beforeEach(async () => {
      q = await make();
    });

    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    async function receiveAll(wanted: number, waitMs = 3000) {
      const got = [];
      const deadline = Date.now() + waitMs;
      while (got.length < wanted && Date.now() < deadline) {
        got.push(...(await q.queue.receive({ max: 10, waitMs: 200 })));
      }
      return got;
    }

    it('delivers each sent message once with receive count 1, and an acked message never again', async () => {
      const ids = await q.queue.send(['a', 'b', 'c']);
      expect(ids).toHaveLength(3);
      const got = await receiveAll(3);
      expect(got.map((m) => m.body).sort()).toEqual(['a', 'b', 'c']);
      expect(got.every((m) => m.receiveCount === 1)).toBe(true);
      expect(new Set(got.map((m) => m.id))).toEqual(new Set(ids));
      for (const m of got) await q.queue.ack(m.receipt);
      await new Promise((r) => setTimeout(r, q.visibilityTimeoutMs + 200));
      expect(await q.queue.receive({ max: 10, waitMs: 0 })).toEqual([]);
    });

    it('hides a delivery for the visibility timeout, then delivers it again with receive count 2', async () => {
      await q.queue.send(['x']);
      const [first] = await receiveAll(1);
      expect(first?.receiveCount).toBe(1);
      expect(await q.queue.receive({ max: 10, waitMs: 0 })).toEqual([]);
      await new Promise((r) => setTimeout(r, q.visibilityTimeoutMs + 300));
      const [again] = await receiveAll(1);
      expect(again?.body).toBe('x');
      expect(again?.id).toBe(first?.id);
      expect(again?.receiveCount).toBe(2);
    });

    it('keeps an extended delivery invisible past its visibility timeout, and its receipt still acks it', async () => {
      await q.queue.send(['long']);
      const [m] = await receiveAll(1);
      const seconds = (3 * q.visibilityTimeoutMs) / 1000;
      expect(await q.queue.extend(m!.receipt, seconds)).toBe(true);
      await sleep(q.visibilityTimeoutMs + 300);
      expect(await q.queue.receive({ max: 10, waitMs: 0 })).toEqual([]);
      expect(await q.queue.extend(m!.receipt, seconds)).toBe(true);
      await sleep(q.visibilityTimeoutMs + 300);
      expect(await q.queue.receive({ max: 10, waitMs: 0 })).toEqual([]);
      await q.queue.ack(m!.receipt);
      await sleep(3 * q.visibilityTimeoutMs + 300);
      expect(await q.queue.receive({ max: 10, waitMs: 0 })).toEqual([]);
    });

    it('holds a delivery on a timer across several visibility timeouts, and a release after stop hands it on at once', async () => {
      await q.queue.send(['held']);
      const [m] = await receiveAll(1);
      const lease = holdLease(q.queue, m!.receipt, q.visibilityTimeoutMs / 1000);
      await sleep(3 * q.visibilityTimeoutMs);
      expect(await q.queue.receive({ max: 10, waitMs: 0 })).toEqual([]);
      await lease.stop();
      expect(lease.lost).toBe(false);
      await q.queue.release(m!.receipt, 0);
      const [again] = await receiveAll(1, 1500);
      expect(again?.body).toBe('held');
      expect(again?.receiveCount).toBe(2);
    });

    it('makes a released message visible again at once', async () => {
      await q.queue.send(['r']);
      const [first] = await receiveAll(1);
      await q.queue.release(first?.receipt as string, 0);
      const [again] = await receiveAll(1);
      expect(again?.body).toBe('r');
      expect(again?.receiveCount).toBe(2);
    });

    it('moves a message to the dead-letter queue on the receive that exceeds the max receive count', async () => {
      await q.queue.send(['poison']);
      for (let delivery = 1; delivery <= 2; delivery++) {
        const [m] = await receiveAll(1);
        expect(m?.receiveCount).toBe(delivery);
        await q.queue.release(m?.receipt as string, 0);
      }
      expect(await receiveAll(1, 1500)).toEqual([]);
      const dead = await q.queue.listDeadLetters();
      expect(dead.map((d) => d.body)).toEqual(['poison']);
    });

    it('dead-letters a message on request with the reason recorded, leaving its batch-mates alone', async () => {
      await q.queue.send(['bad', 'good']);
      const got = await receiveAll(2);
      const bad = got.find((m) => m.body === 'bad');
      const good = got.find((m) => m.body === 'good');
      await q.queue.deadLetter(bad!, 'MESSAGE_INVALID: evaluation message: (root): not JSON');
      await q.queue.ack(good!.receipt);
      const dead = await q.queue.listDeadLetters();
      expect(dead).toHaveLength(1);
      expect(dead[0]?.body).toBe('bad');
      expect(dead[0]?.reason).toBe('MESSAGE_INVALID: evaluation message: (root): not JSON');
      await new Promise((r) => setTimeout(r, q.visibilityTimeoutMs + 200));
      expect(await q.queue.receive({ max: 10, waitMs: 0 })).toEqual([]);
    });
  });
}
