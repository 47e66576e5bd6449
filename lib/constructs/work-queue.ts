import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IGrantable } from 'aws-cdk-lib/aws-iam';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface WorkQueueProps {
  /** What the queue carries, for the alarm's description. */
  purpose: string;
  /** How long a received message stays invisible to other consumers. */
  visibilityTimeout: Duration;
  /** Deliveries before the redrive policy moves a message to the DLQ (the consumers' METRICOPT_MAX_RECEIVE_COUNT). */
  maxReceiveCount: number;
  /** An SNS topic the DLQ alarm notifies; none: the alarm only shows in CloudWatch. */
  alarmTopicArn?: string | undefined;
}

/**
 * A durable work queue as the MetricOpt consumers expect it (shared/adapters/queue.sqs.ts): SQS,
 * encrypted (SSE-SQS) and TLS-only, with a dead-letter queue behind a redrive policy, and an
 * alarm as soon as anything lands in the DLQ. Used for the evaluation queue and the jobs queue.
 */
export class WorkQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly deadLetterAlarm: Alarm;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      visibilityTimeout: props.visibilityTimeout,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });
    this.deadLetterAlarm = new Alarm(this, 'DeadLettersAlarm', {
      alarmDescription: `Messages in the ${props.purpose} dead-letter queue: inspect them, fix the cause, redrive them.`,
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    if (props.alarmTopicArn !== undefined) {
      this.deadLetterAlarm.addAlarmAction(new SnsAction(Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn)));
    }
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

  /** Dead-letter watcher: peek at the DLQ (receive with a zero visibility timeout) and count it. */
  grantPeekDeadLetters(grantee: IGrantable): void {
    this.deadLetterQueue.grant(grantee, 'sqs:ReceiveMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl');
  }
}
