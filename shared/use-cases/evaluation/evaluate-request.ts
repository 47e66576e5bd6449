import { isTransientFailure } from '../../metrics/retry-policy.js';
import { evaluateChecked } from '../../metrics/checked-evaluator.js';
import type { EvaluatorRegistry } from '../../ports/evaluator.port.js';
import type { ObjectStore } from '../../ports/object-store.port.js';
import type { Queue, QueueMessage } from '../../ports/queue.port.js';
import { consumeQueue, type Settle } from '../queue-consumer.js';
import { claimKey, resultKey } from '../../storage/layout.js';
import {
  describeIssue,
  type EvaluationErrorCode,
  type EvaluationMessage,
  type EvaluationResult,
  evaluationMessageSchema,
} from '../../schemas/evaluation.js';
import type { Logger } from '../../ports/logger.port.js';
import { loadInput } from './evaluation-input.js';

/**
 * The evaluator worker: one queued metric query in, one result record out. The same function
 * runs in the Lambda SQS handler and in `metricopt evaluate`; only the queue plumbing differs.
 */
export interface EvaluateRequestDeps {
  store: ObjectStore;
  registry: EvaluatorRegistry;
  /** Recorded in results, e.g. `host:pid`. */
  workerId: string;
  /** The queue's max receive count: a failure on that delivery is final (recorded, dead-lettered). */
  maxReceiveCount: number;
  /** Limit on one evaluator call unless the message asks for less. */
  evaluatorTimeoutMs: number;
  /**
   * How long a claim keeps other workers off a query in progress. Must exceed the evaluator
   * timeout and stay below the queue's visibility timeout, so a killed worker's claim has
   * expired when its message is delivered again. Default: evaluator timeout + 1 s.
   */
  claimTtlMs?: number;
  /** First retry delay, doubled per delivery (local queue; Lambda retries after the visibility timeout). */
  retryDelayMs?: number;
  now?: () => number;
  logger?: Logger;
}

export type RequestOutcome =
  /** Done: a result record exists (just written, or already there). */
  | { action: 'ack'; status: 'evaluated' | 'recorded-error' | 'duplicate'; key?: string }
  /** Transient failure: deliver again later. */
  | { action: 'retry'; delayMs: number; reason: string; key?: string }
  /** Never deliver again; the reason goes with the message to the DLQ. */
  | { action: 'dead-letter'; reason: string; code: EvaluationErrorCode; key?: string };

export interface Delivery {
  body: string;
  /** 1 on the first delivery. */
  receiveCount: number;
}

export async function evaluateRequest(deps: EvaluateRequestDeps, delivery: Delivery): Promise<RequestOutcome> {
  const now = deps.now ?? Date.now;
  const parsed = parseMessage(delivery.body);
  if (!parsed.ok) {
    // Record the failure when the message says where, so a trainer waiting on it does not hang.
    if (parsed.loose) {
      await recordError(deps, parsed.loose, delivery.receiveCount, 'MESSAGE_INVALID', parsed.reason);
    }
    return { action: 'dead-letter', code: 'MESSAGE_INVALID', reason: parsed.reason };
  }
  const msg = parsed.message;
  const key = msg.idempotencyKey;
  const rKey = resultKey(msg.jobId, key);
  if ((await recordState(deps.store, rKey)) === 'complete') return { action: 'ack', status: 'duplicate', key };

  const evaluator = deps.registry.resolve(msg.evaluator);
  if (!evaluator.ok) {
    await recordError(deps, msg, delivery.receiveCount, 'UNKNOWN_METRIC', evaluator.error.message);
    return { action: 'dead-letter', code: 'UNKNOWN_METRIC', reason: evaluator.error.message, key };
  }

  const claimTtl = deps.claimTtlMs ?? deps.evaluatorTimeoutMs + 1000;
  const claimed = await claim(deps.store, claimKey(msg.jobId, key), deps.workerId, claimTtl, now());
  if (claimed !== true) {
    return { action: 'retry', delayMs: claimed.expiresInMs, reason: `claimed by ${claimed.holder}`, key };
  }
  // A worker may have finished between our first look and the claim.
  const state = await recordState(deps.store, rKey);
  if (state === 'complete') {
    await deps.store.delete(claimKey(msg.jobId, key));
    return { action: 'ack', status: 'duplicate', key };
  }
  // A torn record: its writer died inside the exclusive create (we hold the claim, so nobody is
  // writing it now). Remove it so this delivery can record the result.
  if (state === 'torn') await deps.store.delete(rKey);

  const input = await loadInput(deps.store, msg);
  if (!input.ok) {
    await recordError(deps, msg, delivery.receiveCount, input.code, input.reason);
    await deps.store.delete(claimKey(msg.jobId, key));
    return { action: 'dead-letter', code: input.code, reason: input.reason, key };
  }

  const timeoutMs = Math.min(msg.timeoutMs ?? deps.evaluatorTimeoutMs, deps.evaluatorTimeoutMs);
  const value = await evaluateChecked(evaluator.value, input.value, timeoutMs);
  const base = recordBase(deps, msg, delivery.receiveCount, evaluator.value.name, evaluator.value.version);
  if (value.ok) {
    await deps.store.putIfAbsent(
      rKey,
      JSON.stringify({
        ...base,
        outcome: { ok: true, ...value.value, direction: evaluator.value.direction },
      } satisfies EvaluationResult),
    );
    await deps.store.delete(claimKey(msg.jobId, key));
    return { action: 'ack', status: 'evaluated', key };
  }

  const code = value.error.code as EvaluationErrorCode;
  const reason = value.error.message;
  deps.logger?.warn('evaluator-failed', { key, code, reason, receiveCount: delivery.receiveCount });
  // A value outside [0, 1] / NaN is the evaluator's answer, not a hiccup: recorded as final at
  // once; so is an input no evaluator can score (a NaN prediction, a label out of range), which
  // another delivery would not change.
  const deterministic = !isTransientFailure(code);
  const final = deterministic || delivery.receiveCount >= deps.maxReceiveCount;
  if (!final) {
    await deps.store.delete(claimKey(msg.jobId, key));
    const delayMs = (deps.retryDelayMs ?? 1000) * 2 ** (delivery.receiveCount - 1);
    return { action: 'retry', delayMs, reason, key };
  }
  const attempts = deterministic ? '' : ` (after ${delivery.receiveCount} deliveries)`;
  await deps.store.putIfAbsent(
    rKey,
    JSON.stringify({
      ...base,
      outcome: { ok: false, code, message: `${reason}${attempts}` },
    } satisfies EvaluationResult),
  );
  await deps.store.delete(claimKey(msg.jobId, key));
  return code === 'EVALUATOR_INVALID_VALUE'
    ? { action: 'ack', status: 'recorded-error', key }
    : { action: 'dead-letter', code, reason: `${reason}${attempts}`, key };
}

/**
 * A fault of the worker itself (the store unreachable, a bug) while handling a delivery: tried
 * again, except on the last allowed delivery, where the failure is recorded as the query's
 * result (best effort: the store may be what failed) so the trainer stops waiting for it, and
 * the message is dead-lettered with the reason.
 */
export async function faultOutcome(
  deps: EvaluateRequestDeps,
  delivery: Delivery,
  reason: string,
): Promise<RequestOutcome> {
  if (delivery.receiveCount < deps.maxReceiveCount) {
    return { action: 'retry', delayMs: deps.retryDelayMs ?? 1000, reason };
  }
  const final = `worker fault on the last allowed delivery (${delivery.receiveCount}): ${reason}`;
  const parsed = parseMessage(delivery.body);
  if (parsed.ok) {
    await recordError(deps, parsed.message, delivery.receiveCount, 'DEAD_LETTERED', final).catch((e: unknown) =>
      deps.logger?.error('record-failed', { reason: e instanceof Error ? e.message : String(e) }),
    );
  }
  return { action: 'dead-letter', code: 'DEAD_LETTERED', reason: final };
}

/** Applies an outcome to a queue delivery (the local worker pool; Lambda maps outcomes itself). */
export async function settle(queue: Settle, message: QueueMessage, outcome: RequestOutcome): Promise<void> {
  if (outcome.action === 'ack') await queue.ack(message.receipt);
  else if (outcome.action === 'retry') await queue.release(message.receipt, outcome.delayMs);
  else await queue.deadLetter(message, `${outcome.code}: ${outcome.reason}`);
}

export interface WorkerLoopOptions {
  queue: Queue;
  /** Messages received per poll, evaluated concurrently. */
  batchSize?: number;
  /** Long-poll wait per receive. */
  waitMs?: number;
  /** Stops the loop after the current batch. */
  signal?: AbortSignal;
  /** Exit after this long without any message (0 = never). */
  idleExitMs?: number;
  /**
   * Lease on each received message: received with this visibility and extended every third of
   * it while its evaluation runs (a worker that dies lets it go within this). Absent: the
   * queue's own visibility timeout, never extended.
   */
  leaseSeconds?: number;
  onOutcome?: (message: QueueMessage, outcome: RequestOutcome) => void;
}

/** The long-running local worker: receive, evaluate, settle, until stopped. */
export async function runEvaluationWorker(
  deps: EvaluateRequestDeps,
  options: WorkerLoopOptions,
): Promise<{ processed: number }> {
  const { queue } = options;
  const { handled } = await consumeQueue(
    {
      queue,
      batchSize: options.batchSize,
      waitMs: options.waitMs,
      leaseMs: options.leaseSeconds === undefined ? undefined : options.leaseSeconds * 1000,
      signal: options.signal,
      // 0: never.
      idleExitMs: options.idleExitMs || undefined,
    },
    async (message, q) => {
      let outcome: RequestOutcome;
      const delivery = { body: message.body, receiveCount: message.receiveCount };
      try {
        outcome = await evaluateRequest(deps, delivery);
      } catch (e) {
        // Infrastructure fault (store unreachable, disk full): the message comes back later.
        const reason = e instanceof Error ? e.message : String(e);
        deps.logger?.warn('worker-fault', { id: message.id, reason });
        outcome = await faultOutcome(deps, delivery, reason);
      }
      await settle(q, message, outcome);
      options.onOutcome?.(message, outcome);
    },
  );
  return { processed: handled };
}

type ParsedMessage =
  | { ok: true; message: EvaluationMessage }
  | { ok: false; reason: string; loose?: Pick<EvaluationMessage, 'jobId' | 'taskId' | 'step' | 'idempotencyKey'> };

function parseMessage(body: string): ParsedMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, reason: `evaluation message: (root): not JSON: ${JSON.stringify(body.slice(0, 80))}` };
  }
  const parsed = evaluationMessageSchema.safeParse(json);
  if (parsed.success) return { ok: true, message: parsed.data };
  const reason = describeIssue('evaluation message', parsed.error);
  const loose = evaluationMessageSchema.pick({ jobId: true, idempotencyKey: true }).loose().safeParse(json);
  if (!loose.success) return { ok: false, reason };
  const raw = json as { taskId?: unknown; step?: unknown };
  const int = (v: unknown) => (Number.isInteger(v) && (v as number) >= 0 ? (v as number) : 0);
  return {
    ok: false,
    reason,
    loose: {
      jobId: loose.data.jobId,
      idempotencyKey: loose.data.idempotencyKey,
      taskId: int(raw.taskId),
      step: int(raw.step),
    },
  };
}

function recordBase(
  deps: EvaluateRequestDeps,
  msg: Pick<EvaluationMessage, 'jobId' | 'taskId' | 'step' | 'idempotencyKey'>,
  attempt: number,
  evaluatorName: string,
  evaluatorVersion?: string,
): Omit<EvaluationResult, 'outcome'> {
  return {
    version: 'metricopt.evaluation-result/v1',
    jobId: msg.jobId,
    taskId: msg.taskId,
    step: msg.step,
    idempotencyKey: msg.idempotencyKey,
    evaluator: { name: evaluatorName, ...(evaluatorVersion === undefined ? {} : { version: evaluatorVersion }) },
    attempt: Math.max(1, attempt),
    workerId: deps.workerId,
    completedAt: new Date((deps.now ?? Date.now)()).toISOString(),
  };
}

async function recordError(
  deps: EvaluateRequestDeps,
  msg: Pick<EvaluationMessage, 'jobId' | 'taskId' | 'step' | 'idempotencyKey'> & { evaluator?: string },
  attempt: number,
  code: EvaluationErrorCode,
  message: string,
): Promise<void> {
  const record: EvaluationResult = {
    ...recordBase(deps, msg, attempt, msg.evaluator ?? 'unknown'),
    outcome: { ok: false, code, message },
  };
  await deps.store.putIfAbsent(resultKey(msg.jobId, msg.idempotencyKey), JSON.stringify(record));
}

async function claim(
  store: ObjectStore,
  key: string,
  workerId: string,
  ttlMs: number,
  now: number,
): Promise<true | { holder: string; expiresInMs: number }> {
  const body = JSON.stringify({ workerId, expiresAt: now + ttlMs });
  if (await store.putIfAbsent(key, body)) return true;
  const held = parseClaim(await store.get(key));
  if (held && held.expiresAt > now) return { holder: held.workerId, expiresInMs: held.expiresAt - now };
  // Expired (its worker died) or unreadable: take it over. Two takers racing here is the one
  // window where an evaluator can run twice; the result is still written once.
  await store.delete(key);
  if (await store.putIfAbsent(key, body)) return true;
  return { holder: 'another worker', expiresInMs: ttlMs };
}

/** Whether a result record exists and is complete JSON (an exclusive create is not atomic for readers). */
async function recordState(store: ObjectStore, key: string): Promise<'absent' | 'complete' | 'torn'> {
  const bytes = await store.get(key);
  if (bytes === undefined) return 'absent';
  try {
    JSON.parse(new TextDecoder().decode(bytes));
    return 'complete';
  } catch {
    return 'torn';
  }
}

function parseClaim(bytes: Uint8Array | undefined): { workerId: string; expiresAt: number } | undefined {
  if (!bytes) return undefined;
  try {
    const c = JSON.parse(new TextDecoder().decode(bytes)) as { workerId?: unknown; expiresAt?: unknown };
    return typeof c.workerId === 'string' && typeof c.expiresAt === 'number'
      ? { workerId: c.workerId, expiresAt: c.expiresAt }
      : undefined;
  } catch {
    return undefined;
  }
}
