import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, type IAlarm, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { type EventPattern, Rule, RuleTargetInput, EventField } from 'aws-cdk-lib/aws-events';
import { SnsTopic } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { type ITopic, Topic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

export interface AlertsProps {
  /** An existing SNS topic to notify instead of the one this construct creates. */
  topicArn?: string | undefined;
}

/**
 * Where the stack's alarms and failure events go: an SNS topic (created here, encrypted with a
 * customer managed KMS key that CloudWatch and EventBridge may use; or an existing one), every
 * CloudWatch alarm added with `alarm()` and every EventBridge rule added with `onEvent()`.
 * Subscribe to the topic (README "Deploy") to be told.
 */
export class Alerts extends Construct {
  readonly topic: ITopic;
  readonly alarms: IAlarm[] = [];
  readonly rules: Rule[] = [];

  constructor(scope: Construct, id: string, props: AlertsProps = {}) {
    super(scope, id);
    if (props.topicArn !== undefined) {
      this.topic = Topic.fromTopicArn(this, 'Topic', props.topicArn);
      return;
    }
    const key = new Key(this, 'TopicKey', {
      enableKeyRotation: true,
      description: 'MetricOpt alarm topic: CloudWatch alarms and EventBridge rules publish with it',
    });
    // CloudWatch and EventBridge encrypt what they publish to the topic with this key.
    key.addToResourcePolicy(
      new PolicyStatement({
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com'), new ServicePrincipal('events.amazonaws.com')],
        resources: ['*'],
      }),
    );
    this.topic = new Topic(this, 'Topic', {
      displayName: 'MetricOpt alarms',
      masterKey: key,
      enforceSSL: true,
    });
  }

  /** Notifies the topic when the alarm goes to ALARM. */
  alarm(alarm: Alarm): Alarm {
    alarm.addAlarmAction(new SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }

  /** A function's errors and throttles, each an alarm as soon as one happens in 5 minutes. */
  lambda(id: string, fn: IFunction, what: string): void {
    const sum = { period: Duration.minutes(5), statistic: 'Sum' };
    const common = {
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    };
    this.alarm(
      new Alarm(this, `${id}Errors`, {
        ...common,
        metric: fn.metricErrors(sum),
        alarmDescription: `The ${what} function failed (an unhandled error or a timeout): see its log group.`,
      }),
    );
    this.alarm(
      new Alarm(this, `${id}Throttles`, {
        ...common,
        metric: fn.metricThrottles(sum),
        alarmDescription: `The ${what} function was throttled: raise its concurrency setting or the account's Lambda quota.`,
      }),
    );
  }

  /** An EventBridge rule that sends matching events to the topic with a one-line summary. */
  onEvent(id: string, pattern: EventPattern, summary: string): Rule {
    const rule = new Rule(this, id, { eventPattern: pattern, description: summary });
    rule.addTarget(
      new SnsTopic(this.topic, {
        message: RuleTargetInput.fromObject({
          summary,
          event: EventField.fromPath('$.detail-type'),
          time: EventField.time,
          region: EventField.region,
          detail: EventField.fromPath('$.detail'),
        }),
      }),
    );
    this.rules.push(rule);
    return rule;
  }
}
