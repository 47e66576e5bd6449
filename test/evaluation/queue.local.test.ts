import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { describeQueueContract } from './queue.contract.js';
import { onFakeClock } from '../helpers/fake-clock.js';

const newDir = () => mkdtemp(join(tmpdir(), 'metricopt-queue-'));

describeQueueContract('LocalQueue', async () => ({
  queue: new LocalQueue(await newDir(), { visibilityTimeoutMs: 300, maxReceiveCount: 2 }),
  visibilityTimeoutMs: 300,
}));

describe('LocalQueue', () => {
  it('keeps visible and in-flight messages across a restart (a new instance on the same folder)', async () => {
    const dir = await newDir();
    const before = new LocalQueue(dir, { visibilityTimeoutMs: 300 });
    await before.send(['one', 'two']);
    const [taken] = await before.receive({ max: 1 });
    // The process "dies" holding `taken`: no ack, no release.
    const after = new LocalQueue(dir, { visibilityTimeoutMs: 300 });
    expect(await after.counts()).toEqual({ visible: 1, inFlight: 1, deadLetters: 0 });
    await new Promise((r) => setTimeout(r, 400));
    const got = await after.receive({ max: 10 });
    expect(got.map((m) => m.body).sort()).toEqual(['one', 'two']);
    expect(got.find((m) => m.id === taken?.id)?.receiveCount).toBe(2);
  });

  it('never hands the same delivery to two concurrent receivers', async () => {
    const dir = await newDir();
    const writer = new LocalQueue(dir);
    const bodies = Array.from({ length: 200 }, (_, i) => `m${i}`);
    await writer.send(bodies);
    const receivers = Array.from({ length: 4 }, () => new LocalQueue(dir));
    const seen: string[] = [];
    await Promise.all(
      receivers.map(async (r) => {
        for (;;) {
          const got = await r.receive({ max: 3 });
          if (got.length === 0) return;
          for (const m of got) {
            seen.push(m.body);
            await r.ack(m.receipt);
          }
        }
      }),
    );
    expect(seen.sort()).toEqual([...bodies].sort());
    expect(await writer.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });

  it('wakes a long poll when a message arrives instead of waiting out the wait time', async () => {
    const q = new LocalQueue(await newDir());
    const { value: got, elapsedMs } = await onFakeClock(() => {
      const pending = q.receive({ max: 1, waitMs: 5000 });
      setTimeout(() => void q.send(['late']), 100);
      return pending;
    });
    q.close();
    expect(got.map((m) => m.body)).toEqual(['late']);
    // On the fake clock: the message came at 100 ms, the poll ended well before its 5 s.
    expect(elapsedMs).toBeGreaterThanOrEqual(100);
    expect(elapsedMs).toBeLessThan(1000);
  });

  it('answers false when extending a delivery that was delivered again, so its old holder knows', async () => {
    const q = new LocalQueue(await newDir(), { visibilityTimeoutMs: 100 });
    await q.send(['lapsed']);
    const [first] = await q.receive({ max: 1 });
    await new Promise((r) => setTimeout(r, 150));
    const [second] = await q.receive({ max: 1 });
    expect(second?.receiveCount).toBe(2);
    expect(await q.extend(first!.receipt, 5)).toBe(false);
    expect(await q.extend(second!.receipt, 5)).toBe(true);
    await q.ack(second!.receipt);
    expect(await q.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });

  it('ignores an ack with a stale receipt (the message was delivered again meanwhile)', async () => {
    const q = new LocalQueue(await newDir(), { visibilityTimeoutMs: 100 });
    await q.send(['s']);
    const [first] = await q.receive({ max: 1 });
    await new Promise((r) => setTimeout(r, 150));
    const [second] = await q.receive({ max: 1 });
    await q.ack(first!.receipt);
    expect(await q.counts()).toEqual({ visible: 0, inFlight: 1, deadLetters: 0 });
    await q.ack(second!.receipt);
    expect(await q.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });
});

describe('LocalQueue attributes', () => {
  it('are fixed by the first opener, so every process of a pool agrees', async () => {
    const dir = await newDir();
    const first = new LocalQueue(dir, { visibilityTimeoutMs: 1234, maxReceiveCount: 5 });
    await first.counts();
    const later = new LocalQueue(dir, { visibilityTimeoutMs: 99, maxReceiveCount: 1 });
    expect(await later.attributes()).toEqual({ visibilityTimeoutMs: 1234, maxReceiveCount: 5 });
  });
});
