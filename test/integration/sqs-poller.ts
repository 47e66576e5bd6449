import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Queue, QueueMessage } from '../../shared/ports/queue.port.js';

export interface PollerStats {
  batches: number;
  /** Records the handler succeeded on, deleted from the queue. */
  deleted: number;
  /** Records it reported in batchItemFailures, left for SQS to deliver again. */
  reportedFailures: number;
  /** Receive/delete calls or whole invocations that threw (the poller carries on). */
  errors: number;
}

/**
 * What Lambda's SQS event source mapping does, in-process: receive a batch, hand it to the
 * handler as an SQS event, delete the records that succeeded, and leave those reported in
 * `batchItemFailures` (or the whole batch, if the invocation throws) to reappear after the
 * visibility timeout. Runs until `stop()`.
 */
export function startSqsPoller(options: {
  queue: Queue;
  queueArn: string;
  handler: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;
  batchSize?: number;
  waitMs?: number;
}): { stats: PollerStats; stop: () => Promise<PollerStats> } {
  const stats: PollerStats = { batches: 0, deleted: 0, reportedFailures: 0, errors: 0 };
  let running = true;
  const context = { functionName: 'evaluate-metric', awsRequestId: 'poller' } as unknown as Context;

  const record = (m: QueueMessage): SQSRecord => ({
    messageId: m.id,
    receiptHandle: m.receipt,
    body: m.body,
    attributes: {
      ApproximateReceiveCount: String(m.receiveCount),
      SentTimestamp: String(Date.now()),
      SenderId: 'integration-test',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: options.queueArn,
    awsRegion: 'us-east-1',
  });

  const loop = async () => {
    while (running) {
      try {
        const messages = await options.queue.receive({ max: options.batchSize ?? 10, waitMs: options.waitMs ?? 1000 });
        if (messages.length === 0) continue;
        stats.batches++;
        const response = await options.handler({ Records: messages.map(record) }, context);
        const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
        stats.reportedFailures += failed.size;
        for (const m of messages) {
          if (failed.has(m.id)) continue;
          await options.queue.ack(m.receipt);
          stats.deleted++;
        }
      } catch {
        stats.errors++;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const done = loop();
  return {
    stats,
    stop: async () => {
      running = false;
      await done;
      return stats;
    },
  };
}
