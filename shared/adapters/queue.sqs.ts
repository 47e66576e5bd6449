import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { DeadLetter, Queue, QueueMessage, ReceiveOptions } from '../ports/queue.port.js';

export interface SqsQueueOptions {
  client: SQSClient;
  queueUrl: string;
  /** The dead-letter queue of the redrive policy; explicit dead-lettering sends here. */
  deadLetterQueueUrl: string;
}

/** Attribute carrying the reason on a message a consumer dead-lettered itself. */
export const DEAD_LETTER_REASON_ATTRIBUTE = 'metricopt-dead-letter-reason';

/** SQS errors saying a receipt no longer holds its message. */
const LEASE_LOST = /MessageNotInflight|ReceiptHandleIsInvalid|InvalidParameterValue/;

/**
 * SQS adapter. Visibility timeout and max receive count are the queue's own settings (the
 * redrive policy moves a message to the DLQ on the receive that exceeds the count); explicit
 * dead-lettering sends a copy with the reason to the DLQ, then deletes the original.
 */
export class SqsQueue implements Queue {
  readonly location: string;
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private readonly dlqUrl: string;

  constructor(options: SqsQueueOptions) {
    this.client = options.client;
    this.queueUrl = options.queueUrl;
    this.dlqUrl = options.deadLetterQueueUrl;
    this.location = options.queueUrl;
  }

  async send(bodies: string[]): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < bodies.length; i += 10) {
      const chunk = bodies.slice(i, i + 10);
      const out = await this.client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: chunk.map((body, k) => ({ Id: String(k), MessageBody: body })),
        }),
      );
      if (out.Failed && out.Failed.length > 0) {
        const f = out.Failed[0];
        throw new Error(`SqsQueue.send: ${out.Failed.length} of ${chunk.length} failed (${f?.Code}: ${f?.Message})`);
      }
      const byId = new Map((out.Successful ?? []).map((s) => [s.Id, s.MessageId ?? '']));
      for (let k = 0; k < chunk.length; k++) ids.push(byId.get(String(k)) ?? '');
    }
    return ids;
  }

  async receive(options: ReceiveOptions): Promise<QueueMessage[]> {
    return this.receiveFrom(this.queueUrl, options);
  }

  private async receiveFrom(queueUrl: string, options: ReceiveOptions): Promise<QueueMessage[]> {
    const out = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: Math.max(1, Math.min(10, options.max)),
        WaitTimeSeconds: Math.min(20, Math.ceil((options.waitMs ?? 0) / 1000)),
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        MessageAttributeNames: [DEAD_LETTER_REASON_ATTRIBUTE],
        ...(options.visibilityTimeoutMs === undefined
          ? {}
          : { VisibilityTimeout: Math.ceil(options.visibilityTimeoutMs / 1000) }),
      }),
    );
    return (out.Messages ?? []).map((m) => ({
      id: m.MessageId ?? '',
      receipt: m.ReceiptHandle ?? '',
      body: m.Body ?? '',
      receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
    }));
  }

  async ack(receipt: string): Promise<void> {
    await this.client.send(new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receipt }));
  }

  async release(receipt: string, delayMs = 0): Promise<void> {
    await this.client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: receipt,
        VisibilityTimeout: Math.min(43_200, Math.ceil(delayMs / 1000)),
      }),
    );
  }

  async extend(receipt: string, seconds: number): Promise<boolean> {
    try {
      await this.client.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: this.queueUrl,
          ReceiptHandle: receipt,
          VisibilityTimeout: Math.max(0, Math.min(43_200, Math.ceil(seconds))),
        }),
      );
      return true;
    } catch (e) {
      // Not held any more: deleted, delivered again, or past SQS's 12-hour limit for one receive.
      if (LEASE_LOST.test((e as { name?: string }).name ?? '')) return false;
      throw e;
    }
  }

  /** Sends the body to the DLQ with the reason; the caller's delivery is then deleted. */
  async deadLetter(message: QueueMessage, reason: string): Promise<void> {
    await this.sendToDeadLetterQueue(message.body, reason);
    await this.ack(message.receipt);
  }

  /** The send half of dead-lettering, for a Lambda whose deliveries the runtime deletes. */
  async sendToDeadLetterQueue(body: string, reason: string): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.dlqUrl,
        MessageBody: body,
        MessageAttributes: {
          [DEAD_LETTER_REASON_ATTRIBUTE]: { DataType: 'String', StringValue: reason.slice(0, 4096) },
        },
      }),
    );
  }

  async counts(): Promise<{ visible: number; inFlight: number; deadLetters: number }> {
    const attrs = async (url: string) =>
      (
        await this.client.send(
          new GetQueueAttributesCommand({
            QueueUrl: url,
            AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
          }),
        )
      ).Attributes ?? {};
    const [main, dlq] = await Promise.all([attrs(this.queueUrl), attrs(this.dlqUrl)]);
    return {
      visible: Number(main.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(main.ApproximateNumberOfMessagesNotVisible ?? 0),
      deadLetters:
        Number(dlq.ApproximateNumberOfMessages ?? 0) + Number(dlq.ApproximateNumberOfMessagesNotVisible ?? 0),
    };
  }

  /**
   * Peeks at the DLQ: receives with a zero visibility timeout, so the messages stay there.
   * SQS returns a sample; call again for more.
   */
  async listDeadLetters(max = 10): Promise<DeadLetter[]> {
    const out = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: this.dlqUrl,
        MaxNumberOfMessages: Math.max(1, Math.min(10, max)),
        VisibilityTimeout: 0,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        MessageAttributeNames: [DEAD_LETTER_REASON_ATTRIBUTE],
      }),
    );
    return (out.Messages ?? []).map((m) => {
      const reason = m.MessageAttributes?.[DEAD_LETTER_REASON_ATTRIBUTE]?.StringValue;
      return {
        id: m.MessageId ?? '',
        body: m.Body ?? '',
        receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 0),
        ...(reason === undefined ? {} : { reason }),
      };
    });
  }
}
