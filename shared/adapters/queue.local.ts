import { EVALUATOR_ATTEMPTS } from '../metrics/retry-policy.js';
import { randomUUID } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DeadLetter, Queue, QueueMessage, ReceiveOptions } from '../ports/queue.port.js';

/**
 * Attributes of the queue, fixed when it is created (like an SQS queue's): the first process
 * to open a folder writes them to `queue.json`; every later opener uses those, whatever it
 * passed, so a pool of processes always agrees.
 */
export interface LocalQueueOptions {
  /** Default visibility timeout of a delivery (SQS default: 30 s). */
  visibilityTimeoutMs?: number;
  /** A receive that would exceed this many deliveries dead-letters the message instead (SQS redrive policy). */
  maxReceiveCount?: number;
}

/**
 * The embedded queue: a folder where every message is one file and every state change is one
 * atomic rename, so any number of processes can share it and a killed process loses nothing.
 *
 *   ready/<order>~<id>~<deliveries>.msg                 visible, waiting
 *   inflight/<visibleAt>~<id>~<deliveries>~<token>.msg  delivered; its name is the receipt
 *   dlq/<id>~<deliveries>.msg (+ <id>.reason)           dead letters
 *
 * A receive renames ready -> inflight (one receiver wins the rename); an ack deletes the
 * inflight file; an expired inflight file is renamed back to ready by whichever receiver notices
 * first. The message body is the file's content and never changes. State survives a restart of
 * every process (a crash of the machine may lose what the OS had not flushed yet).
 */
export class LocalQueue implements Queue {
  readonly root: string;
  readonly location: string;
  private visibilityTimeoutMs: number;
  private maxReceiveCount: number;
  private readonly ready: string;
  private readonly inflight: string;
  private readonly dlq: string;
  private readonly tmp: string;
  private initialised: Promise<void> | undefined;
  private lastReclaim = 0;
  private listing: string[] = [];
  private sendSeq = 0;
  private watcher: FSWatcher | undefined;
  private wakers: Array<() => void> = [];
  /** Receipt -> its in-flight file's name after `extend` renamed it (the receipt stays the handle). */
  private readonly extended = new Map<string, string>();

  constructor(root: string, options: LocalQueueOptions = {}) {
    this.root = resolve(root);
    this.location = pathToFileURL(this.root).href;
    this.visibilityTimeoutMs = options.visibilityTimeoutMs ?? 30_000;
    this.maxReceiveCount = options.maxReceiveCount ?? EVALUATOR_ATTEMPTS;
    if (!(this.visibilityTimeoutMs > 0)) throw new Error('LocalQueue: visibilityTimeoutMs must be positive');
    if (!(this.maxReceiveCount >= 1)) throw new Error('LocalQueue: maxReceiveCount must be at least 1');
    this.ready = join(this.root, 'ready');
    this.inflight = join(this.root, 'inflight');
    this.dlq = join(this.root, 'dlq');
    this.tmp = join(this.root, 'tmp');
  }

  private init(): Promise<void> {
    this.initialised ??= (async () => {
      await Promise.all([this.ready, this.inflight, this.dlq, this.tmp].map((d) => mkdir(d, { recursive: true })));
      const file = join(this.root, 'queue.json');
      const mine = JSON.stringify({
        visibilityTimeoutMs: this.visibilityTimeoutMs,
        maxReceiveCount: this.maxReceiveCount,
      });
      const staged = join(this.tmp, `queue.json.${token()}`);
      await writeFile(staged, mine);
      try {
        await link(staged, file); // atomic create: a concurrent opener never reads half a file
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const attrs = JSON.parse(await readFile(file, 'utf8')) as Required<LocalQueueOptions>;
        this.visibilityTimeoutMs = attrs.visibilityTimeoutMs;
        this.maxReceiveCount = attrs.maxReceiveCount;
      } finally {
        await unlink(staged);
      }
    })();
    return this.initialised;
  }

  /** The queue's attributes (those of `queue.json` once the folder exists). */
  async attributes(): Promise<Required<LocalQueueOptions>> {
    await this.init();
    return { visibilityTimeoutMs: this.visibilityTimeoutMs, maxReceiveCount: this.maxReceiveCount };
  }

  async send(bodies: string[]): Promise<string[]> {
    await this.init();
    const ids: string[] = [];
    for (const body of bodies) {
      const id = randomUUID();
      const order = `${String(Date.now()).padStart(15, '0')}-${String(this.sendSeq++ % 1e6).padStart(6, '0')}`;
      const staged = join(this.tmp, `${id}.msg`);
      await writeFile(staged, body);
      await rename(staged, join(this.ready, `${order}~${id}~0.msg`));
      ids.push(id);
    }
    return ids;
  }

  async receive(options: ReceiveOptions): Promise<QueueMessage[]> {
    await this.init();
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      const got = await this.receiveOnce(options);
      const left = deadline - Date.now();
      if (got.length > 0 || left <= 0) return got;
      await this.waitForWork(Math.min(left, 50));
    }
  }

  private async receiveOnce(options: ReceiveOptions): Promise<QueueMessage[]> {
    const now = Date.now();
    if (now - this.lastReclaim >= Math.min(250, this.visibilityTimeoutMs / 4)) await this.reclaimExpired(now);
    const visibility = options.visibilityTimeoutMs ?? this.visibilityTimeoutMs;
    const out: QueueMessage[] = [];
    let refreshed = false;
    while (out.length < options.max) {
      if (this.listing.length === 0) {
        if (refreshed) break;
        this.listing = await this.listReady();
        refreshed = true;
        continue;
      }
      const name = this.listing.shift() as string;
      const parsed = parseReady(name);
      if (!parsed) continue;
      if (parsed.deliveries >= this.maxReceiveCount) {
        await this.moveIgnoringRace(join(this.ready, name), join(this.dlq, `${parsed.id}~${parsed.deliveries}.msg`));
        continue;
      }
      const deliveries = parsed.deliveries + 1;
      const receipt = `${String(Date.now() + visibility).padStart(15, '0')}~${parsed.id}~${deliveries}~${token()}.msg`;
      if (!(await this.moveIgnoringRace(join(this.ready, name), join(this.inflight, receipt)))) continue;
      let body: string;
      try {
        body = await readFile(join(this.inflight, receipt), 'utf8');
      } catch (e) {
        if (isMissing(e)) continue; // expired and reclaimed already (visibility shorter than a read)
        throw e;
      }
      out.push({ id: parsed.id, receipt, body, receiveCount: deliveries });
    }
    return out;
  }

  /**
   * Names in ready/, oldest first, read once and then consumed across receives (a name another
   * receiver took meanwhile costs one failed rename). Receivers racing for the same head of the
   * queue lose renames, so each starts at a random place among the first few.
   */
  private async listReady(): Promise<string[]> {
    const names = (await readdir(this.ready)).filter((n) => n.endsWith('.msg')).sort();
    const start = Math.floor(Math.random() * Math.min(names.length, 8));
    return [...names.slice(start), ...names.slice(0, start)];
  }

  /** Makes deliveries whose visibility timeout passed visible again. */
  private async reclaimExpired(now: number): Promise<void> {
    this.lastReclaim = now;
    for (const name of await readdir(this.inflight)) {
      const parsed = parseInflight(name);
      if (!parsed || parsed.visibleAt > now) continue;
      await this.moveIgnoringRace(join(this.inflight, name), join(this.ready, readyName(parsed.id, parsed.deliveries)));
    }
  }

  async ack(receipt: string): Promise<void> {
    assertReceipt(receipt);
    const name = this.settle(receipt);
    try {
      await unlink(join(this.inflight, name));
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }

  async release(receipt: string, delayMs = 0): Promise<void> {
    assertReceipt(receipt);
    const name = this.settle(receipt);
    const parsed = parseInflight(name);
    if (!parsed) return;
    const target =
      delayMs <= 0
        ? join(this.ready, readyName(parsed.id, parsed.deliveries))
        : join(
            this.inflight,
            `${String(Date.now() + delayMs).padStart(15, '0')}~${parsed.id}~${parsed.deliveries}~${token()}.msg`,
          );
    await this.moveIgnoringRace(join(this.inflight, name), target);
  }

  /**
   * Renames the in-flight file to its new visible-at time (one atomic rename: a receiver that
   * reclaimed it first wins, and this answers false).
   */
  async extend(receipt: string, seconds: number): Promise<boolean> {
    assertReceipt(receipt);
    const name = this.extended.get(receipt) ?? receipt;
    const parsed = parseInflight(name) as { id: string; deliveries: number };
    const next = `${String(Date.now() + Math.max(0, seconds) * 1000).padStart(15, '0')}~${parsed.id}~${parsed.deliveries}~${token()}.msg`;
    if (!(await this.moveIgnoringRace(join(this.inflight, name), join(this.inflight, next)))) return false;
    this.extended.set(receipt, next);
    return true;
  }

  /** The current name of a receipt's in-flight file; the receipt is done with after this. */
  private settle(receipt: string): string {
    const name = this.extended.get(receipt) ?? receipt;
    this.extended.delete(receipt);
    return name;
  }

  async deadLetter(message: QueueMessage, reason: string): Promise<void> {
    const receipt = message.receipt;
    assertReceipt(receipt);
    const name = this.settle(receipt);
    const parsed = parseInflight(name);
    if (!parsed) return;
    await this.init();
    const staged = join(this.tmp, `${parsed.id}.reason.${token()}`);
    await writeFile(staged, reason);
    await rename(staged, join(this.dlq, `${parsed.id}.reason`));
    await this.moveIgnoringRace(join(this.inflight, name), join(this.dlq, `${parsed.id}~${parsed.deliveries}.msg`));
  }

  async counts(): Promise<{ visible: number; inFlight: number; deadLetters: number }> {
    await this.init();
    const [ready, inflight, dlq] = await Promise.all([readdir(this.ready), readdir(this.inflight), readdir(this.dlq)]);
    const msgs = (names: string[]) => names.filter((n) => n.endsWith('.msg')).length;
    return { visible: msgs(ready), inFlight: msgs(inflight), deadLetters: msgs(dlq) };
  }

  async listDeadLetters(max = 100): Promise<DeadLetter[]> {
    await this.init();
    const names = (await readdir(this.dlq)).filter((n) => n.endsWith('.msg')).sort();
    const out: DeadLetter[] = [];
    for (const name of names.slice(0, max)) {
      const [id, deliveries] = name.slice(0, -'.msg'.length).split('~') as [string, string];
      const body = await readFile(join(this.dlq, name), 'utf8');
      let reason: string | undefined;
      try {
        reason = await readFile(join(this.dlq, `${id}.reason`), 'utf8');
      } catch (e) {
        if (!isMissing(e)) throw e;
      }
      out.push({ id, body, receiveCount: Number(deliveries), ...(reason === undefined ? {} : { reason }) });
    }
    return out;
  }

  /** Stops the file watcher used to wake long polls (the queue stays usable, falling back to polling). */
  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    for (const wake of this.wakers.splice(0)) wake();
  }

  private async moveIgnoringRace(from: string, to: string): Promise<boolean> {
    try {
      await rename(from, to);
      return true;
    } catch (e) {
      if (isMissing(e)) return false; // another process moved it first
      throw e;
    }
  }

  /** Sleeps until something lands in ready/ (inotify where available) or `ms` passes. */
  private waitForWork(ms: number): Promise<void> {
    if (!this.watcher) {
      try {
        this.watcher = watch(this.ready, { persistent: false }, () => {
          for (const wake of this.wakers.splice(0)) wake();
        });
        this.watcher.on('error', () => this.close());
      } catch {
        // No watcher on this file system: plain polling.
      }
    }
    return new Promise((done) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.wakers = this.wakers.filter((w) => w !== finish);
        done();
      };
      const timer = setTimeout(finish, ms);
      this.wakers.push(finish);
    });
  }
}

function readyName(id: string, deliveries: number): string {
  return `${String(Date.now()).padStart(15, '0')}-r~${id}~${deliveries}.msg`;
}

function parseReady(name: string): { id: string; deliveries: number } | undefined {
  const parts = name.slice(0, -'.msg'.length).split('~');
  if (parts.length !== 3) return undefined;
  const deliveries = Number(parts[2]);
  return Number.isInteger(deliveries) ? { id: parts[1] as string, deliveries } : undefined;
}

function parseInflight(name: string): { visibleAt: number; id: string; deliveries: number } | undefined {
  if (!name.endsWith('.msg')) return undefined;
  const parts = name.slice(0, -'.msg'.length).split('~');
  if (parts.length !== 4) return undefined;
  const visibleAt = Number(parts[0]);
  const deliveries = Number(parts[2]);
  if (!Number.isFinite(visibleAt) || !Number.isInteger(deliveries)) return undefined;
  return { visibleAt, id: parts[1] as string, deliveries };
}

function assertReceipt(receipt: string): void {
  if (receipt.includes('/') || receipt.includes('\\') || !parseInflight(receipt)) {
    throw new Error(`LocalQueue: '${receipt}' is not a receipt of this queue`);
  }
}

function token(): string {
  return Math.random().toString(36).slice(2, 10);
}

function isMissing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === 'ENOENT';
}
