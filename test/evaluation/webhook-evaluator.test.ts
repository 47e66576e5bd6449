import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { evaluateChecked } from '../../shared/metrics/checked-evaluator.js';
import {
  createWebhookEvaluator,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  verifyWebhookSignature,
  webhookSignature,
} from '../../shared/adapters/evaluator.webhook.js';

const SECRET = 'a-shared-secret-of-some-length';
let server: Server | undefined;

async function serve(handler: (body: string, req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => handler(body, req, res));
  });
  server = srv;
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(srv.address() as { port: number }).port}/metric`;
}

afterEach(async () => {
  const running = server;
  server = undefined;
  if (!running) return;
  running.closeAllConnections();
  await new Promise((r) => running.close(r));
});

const input = { scores: Float32Array.from([0.9, 0.2, 0.7]), labels: Int32Array.from([1, 0, 0]), classes: 2 };

describe('createWebhookEvaluator', () => {
  it('POSTs scores and labels signed with HMAC-SHA256 over the timestamp and body, and returns the value', async () => {
    const seen: Array<{ body: string; signature: string; timestamp: string }> = [];
    const url = await serve((body, req, res) => {
      const timestamp = String(req.headers[TIMESTAMP_HEADER]);
      const signature = String(req.headers[SIGNATURE_HEADER]);
      seen.push({ body, signature, timestamp });
      if (!verifyWebhookSignature(SECRET, timestamp, body, signature)) {
        res.writeHead(401).end('bad signature');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: 0.25 }));
    });
    const evaluator = createWebhookEvaluator({
      name: 'partner-f1',
      url,
      direction: 'maximize',
      secret: SECRET,
      timeoutMs: 2000,
      now: () => 1_700_000_000,
    });

    const result = await evaluateChecked(evaluator, input);

    expect(result).toMatchObject({ ok: true, value: { value: 0.25, normalised: 0.75 } });
    expect(JSON.parse(seen[0]?.body as string)).toEqual({
      metric: 'partner-f1',
      classes: 2,
      scores: [Math.fround(0.9), Math.fround(0.2), Math.fround(0.7)],
      labels: [1, 0, 0],
    });
    expect(seen[0]?.timestamp).toBe('1700000000');
    expect(seen[0]?.signature).toBe(webhookSignature(SECRET, '1700000000', seen[0]?.body as string));
    expect(seen[0]?.signature).toMatch(/^sha256=[0-9a-f]{64}$/);
  });

  it('is refused by a receiver holding another secret, and reports the status as an evaluator failure', async () => {
    const url = await serve((body, req, res) => {
      const ok = verifyWebhookSignature(
        'another-secret-entirely',
        String(req.headers[TIMESTAMP_HEADER]),
        body,
        String(req.headers[SIGNATURE_HEADER]),
      );
      res.writeHead(ok ? 200 : 401).end(ok ? '{"value":0.5}' : 'bad signature');
    });
    const evaluator = createWebhookEvaluator({
      name: 'partner',
      url,
      direction: 'minimize',
      secret: SECRET,
      timeoutMs: 2000,
    });

    const result = await evaluateChecked(evaluator, input);

    expect(result).toMatchObject({ ok: false, error: { code: 'EVALUATOR_FAILED' } });
    expect(!result.ok && result.error.message).toBe(
      `evaluator 'partner' threw: webhook evaluator 'partner': ${url} answered 401: bad signature`,
    );
  });

  it('gives up after the timeout with EVALUATOR_TIMEOUT', async () => {
    const url = await serve(() => {
      // never answers
    });
    const evaluator = createWebhookEvaluator({
      name: 'slow-partner',
      url,
      direction: 'minimize',
      secret: SECRET,
      timeoutMs: 100,
    });

    const result = await evaluateChecked(evaluator, input);

    // The server never answers: only the 100-ms timeout can end the call (its latency is
    // measured in bench/timing-claims.mjs, not asserted here).
    expect(result).toMatchObject({ ok: false, error: { code: 'EVALUATOR_TIMEOUT' } });
  });

  it('rejects an answer without a numeric value, and a value outside [0, 1]', async () => {
    const answers = ['{"score":0.3}', '{"value":1.7}'];
    const url = await serve((_, __, res) => res.writeHead(200).end(answers.shift()));
    const evaluator = createWebhookEvaluator({
      name: 'odd',
      url,
      direction: 'minimize',
      secret: SECRET,
      timeoutMs: 2000,
    });

    const missing = await evaluateChecked(evaluator, input);
    const outside = await evaluateChecked(evaluator, input);

    expect(missing).toMatchObject({ ok: false, error: { code: 'EVALUATOR_FAILED' } });
    expect(outside).toMatchObject({ ok: false, error: { code: 'EVALUATOR_INVALID_VALUE' } });
  });
});

describe('verifyWebhookSignature', () => {
  it('accepts the exact signature only', () => {
    const sig = webhookSignature(SECRET, '1', 'body');
    expect(verifyWebhookSignature(SECRET, '1', 'body', sig)).toBe(true);
    expect(verifyWebhookSignature(SECRET, '2', 'body', sig)).toBe(false);
    expect(verifyWebhookSignature(SECRET, '1', 'body!', sig)).toBe(false);
    expect(verifyWebhookSignature(SECRET, '1', 'body', 'sha256=00')).toBe(false);
  });
});
