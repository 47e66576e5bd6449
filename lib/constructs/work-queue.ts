import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { IGrantable } from 'aws-cdk-lib/aws-iam';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Alerts } from './alerts.js';

export interface WorkQueueProps {
  /** What the queue carries, for the alarm's description. */
  purpose: string;
  /** How long a received message stays invisible to other consumers. */
  visibilityTimeout: Duration;
  /** Deliveries before the redrive policy moves a message to the DLQ (the consumers' METRICOPT_MAX_RECEIVE_COUNT). */
  maxReceiveCount: number;
  /** The oldest waiting message older than this raises an alarm (nothing is taking the work). */
  maxAge: Duration;
  /** Where the queue's alarms go. */
  alerts: Alerts;
}

/** How long a message is kept in a work queue; its DLQ keeps messages longer (see below). */
export const QUEUE_RETENTION = Duration.days(7);
/**
 * SQS keeps a message's first enqueue time when it moves to the DLQ, so the DLQ must retain
 * messages longer than the source queue, or a dead letter can expire as it arrives.
 */
export const DEAD_LETTER_RETENTION = Duration.days(14);

/**
 * A durable work queue as the MetricOpt consumers expect it (shared/adapters/queue.sqs.ts): SQS,
 * encrypted (SSE-SQS) and TLS-only, with a dead-letter queue behind a redrive policy, an alarm as
 * soon as anything lands in the DLQ and one when the oldest message waits too long (no consumer,
 * no capacity). Used for the evaluation queue and the jobs queue.
 */
export class WorkQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly deadLetterAlarm: Alarm;
  readonly ageAlarm: Alarm;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: DEAD_LETTER_RETENTION,
    });
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: QUEUE_RETENTION,
      visibilityTimeout: props.visibilityTimeout,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });
    this.deadLetterAlarm = props.alerts.alarm(
      new Alarm(this, 'DeadLettersAlarm', {
        alarmDescription: `Messages in the ${props.purpose} dead-letter queue: inspect them, fix the cause, redrive them.`,
        metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
    );
    this.ageAlarm = props.alerts.alarm(
      new Alarm(this, 'OldestMessageAlarm', {
        alarmDescription: `The oldest message in the ${props.purpose} queue has waited over ${props.maxAge.toHumanString()}: no consumer is taking work (capacity, quota, a crashing worker).`,
        metric: this.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: 'Maximum' }),
        threshold: props.maxAge.toSeconds(),
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
    );
  }

  /** Producer: send messages (and read the queue's attributes). */
  grantSend(grantee: IGrantable): void {
    this.queue.grantSendMessages(grantee);
  }

  /** Consumer: receive, delete and extend messages, send follow-up messages, and dead-letter poison ones. */
  grantWork(grantee: IGrantable): void {
    this.queue.grantConsumeMessages(grantee);
    this.queue.grantSendMessages(grantee);
    this.deadLetterQueue.grantSendMessages(grantee);
  }
}
