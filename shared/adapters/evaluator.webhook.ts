import { createHmac, timingSafeEqual } from 'node:crypto';
import { MetricError } from '../metrics/errors.js';
import type { Direction, Evaluator, OutputKind } from '../ports/evaluator.port.js';
import type { WebhookEvaluatorSpec } from '../schemas/evaluation.js';

export const SIGNATURE_HEADER = 'x-metricopt-signature';
export const TIMESTAMP_HEADER = 'x-metricopt-timestamp';

export interface WebhookEvaluatorOptions {
  name: string;
  url: string;
  direction: Direction;
  /** HMAC-SHA256 key shared with the receiver. */
  secret: string;
  timeoutMs: number;
  version?: string;
  /** The output kinds the receiver reads; 'embedding' makes callers compute embeddings for it. */
  outputs?: readonly OutputKind[];
  /** Injected for tests; the global fetch otherwise. */
  fetch?: typeof fetch;
  /** Seconds since the epoch, injected for tests. */
  now?: () => number;
}

/**
 * `sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`): the timestamp is signed too, so a
 * receiver can refuse replays older than a few minutes.
 */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** For receivers: constant-time check of a request's signature header. */
export function verifyWebhookSignature(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(webhookSignature(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/**
 * A metric that lives in another system. Each evaluation POSTs
 * `{ "metric", "classes", "scores": number[], "labels": number[] }` as JSON, plus
 * `"rows": number[]`, `"context": { name: number[] }` and `"embeddings": { "dim", "values":
 * number[] }` (n x dim, row-major, L2-normalised; sent when the spec's `outputs` include
 * 'embedding' and the caller computed them) when the evaluation has them (the EvaluationInput
 * fields of the same names, in the same order), signed in the
 * `x-metricopt-signature` header, and expects `{ "value": number }` (natural direction, in
 * [0, 1]) within the timeout. A non-2xx status, a malformed answer or the timeout throw, so the
 * checked evaluator records them and the queue retries.
 */
export function createWebhookEvaluator(options: WebhookEvaluatorOptions): Evaluator {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  return {
    name: options.name,
    direction: options.direction,
    ...(options.version === undefined ? {} : { version: options.version }),
    ...(options.outputs === undefined ? {} : { outputs: options.outputs }),
    async evaluate(input) {
      const body = JSON.stringify({
        metric: options.name,
        classes: input.classes,
        scores: Array.from(input.scores),
        labels: Array.from(input.labels),
        ...(input.rows === undefined ? {} : { rows: Array.from(input.rows) }),
        ...(input.context === undefined
          ? {}
          : { context: Object.fromEntries(Object.entries(input.context).map(([c, v]) => [c, Array.from(v)])) }),
        ...(input.embeddings === undefined
          ? {}
          : { embeddings: { dim: input.embeddings.dim, values: Array.from(input.embeddings.values) } }),
      });
      const timestamp = String(now());
      let response: Response;
      try {
        response = await doFetch(options.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            [TIMESTAMP_HEADER]: timestamp,
            [SIGNATURE_HEADER]: webhookSignature(options.secret, timestamp, body),
          },
          body,
          signal: AbortSignal.timeout(options.timeoutMs),
        });
      } catch (e) {
        const name = (e as Error).name;
        if (name === 'TimeoutError' || name === 'AbortError') {
          throw new MetricError(
            'EVALUATOR_TIMEOUT',
            `webhook evaluator '${options.name}': ${options.url} did not answer within ${options.timeoutMs} ms`,
          );
        }
        throw new Error(`webhook evaluator '${options.name}': POST ${options.url} failed: ${(e as Error).message}`);
      }
      const text = await response.text();
      if (!response.ok) {
        throw new Error(
          `webhook evaluator '${options.name}': ${options.url} answered ${response.status}: ${text.slice(0, 200)}`,
        );
      }
      let value: unknown;
      try {
        value = (JSON.parse(text) as { value?: unknown }).value;
      } catch {
        value = undefined;
      }
      if (typeof value !== 'number') {
        throw new Error(`webhook evaluator '${options.name}': answer has no numeric "value": ${text.slice(0, 200)}`);
      }
      return value;
    },
  };
}

/** The webhook evaluator a configured spec describes (`fetch`: for tests). */
export function webhookEvaluatorOf(spec: WebhookEvaluatorSpec, fetchImpl?: typeof fetch): Evaluator {
  return createWebhookEvaluator({
    name: spec.name,
    url: spec.url,
    direction: spec.direction,
    secret: spec.secret,
    timeoutMs: spec.timeoutMs,
    ...(spec.version === undefined ? {} : { version: spec.version }),
    ...(spec.outputs === undefined ? {} : { outputs: spec.outputs }),
    ...(fetchImpl === undefined ? {} : { fetch: fetchImpl }),
  });
}
