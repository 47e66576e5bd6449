import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CloudFormationClient,
  CreateStackCommand,
  DeleteStackCommand,
  DescribeStackEventsCommand,
  DescribeStackResourcesCommand,
  DescribeStacksCommand,
  type Output,
  type StackResource,
} from '@aws-sdk/client-cloudformation';
import {
  CloudWatchClient,
  DescribeAlarmHistoryCommand,
  DescribeAlarmsCommand,
  GetMetricDataCommand,
  type MetricAlarm,
} from '@aws-sdk/client-cloudwatch';
import { CloudWatchLogsClient, DeleteLogGroupCommand, DescribeLogGroupsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { GetInstanceProfileCommand, GetRoleCommand, GetRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import {
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetBucketEncryptionCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  ListObjectVersionsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MetricOptStack } from '../../lib/metricopt-stack.js';
import { openObjectStore, openQueue } from '../../shared/adapters/from-url.js';
import { cdkApp } from '../lib/synth-fixtures.js';
import {
  type CfnResource,
  type CfnTemplate,
  type DeployableTemplate,
  deployableTemplate,
  UNDEPLOYABLE_TYPE_PREFIXES,
} from './deployable-template.js';
import { describeOnLocalStack, endpoint, uniqueName } from './localstack.js';

/**
 * The CDK app's stack with the default settings, synthesized in-process, filtered to what
 * LocalStack's core can deploy (deployable-template.ts: no Lambda, ECS, EC2 or auto scaling, nor
 * what refers to them) and created through CloudFormation's CreateStack, then checked with the
 * SDK resource by resource against the synthesized template, used through its outputs with the
 * repository's own adapters, its DLQ alarm driven to ALARM, and deleted.
 */
describeOnLocalStack('the CDK stack deployed through CloudFormation (LocalStack)', () => {
  const region = 'us-east-1';
  const clients = () => ({ endpoint: endpoint(), region });
  let cfn: CloudFormationClient;
  let s3: S3Client;
  let sqs: SQSClient;
  let cloudwatch: CloudWatchClient;
  let synthesized: CfnTemplate;
  let deployable: DeployableTemplate;
  const stackName = uniqueName('metricopt-cfn');
  let stackCreated = false;
  let stackDeleted = false;
  let physical: Record<string, string>;
  let outputs: Record<string, string>;
  /** When the DLQ message was sent, for the alarm's wait. */
  let deadLetteredAt = 0;

  const kept = (type: string) =>
    Object.entries(deployable.template.Resources).filter(([, r]) => r.Type === type) as [string, CfnResource][];
  const props = (id: string) => deployable.template.Resources[id]?.Properties ?? {};
  /** The logical id a `{ Ref }` / `{ Fn::GetAtt }` value points at. */
  const target = (value: unknown): string => {
    const v = value as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
    const id = v.Ref ?? v['Fn::GetAtt']?.[0];
    if (id === undefined) throw new Error(`not a reference: ${JSON.stringify(value)}`);
    return id;
  };
  const physicalId = (id: string): string => {
    const p = physical[id];
    if (p === undefined) throw new Error(`the deployed stack has no resource ${id}`);
    return p;
  };

  beforeAll(async () => {
    cfn = new CloudFormationClient(clients());
    s3 = new S3Client({ ...clients(), forcePathStyle: true });
    sqs = new SQSClient(clients());
    cloudwatch = new CloudWatchClient(clients());

    // Asset bundling and staging are switched off: they only feed the Lambda code and the trainer
    // image, both dropped below, and more than double the synth time. Nothing kept differs.
    const outdir = mkdtempSync(join(tmpdir(), 'metricopt-cdk-deploy-'));
    try {
      const app = cdkApp(outdir, { 'aws:cdk:bundling-stacks': [], 'aws:cdk:disable-asset-staging': true });
      synthesized = Template.fromStack(new MetricOptStack(app, 'MetricOpt')).toJSON() as CfnTemplate;
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
    deployable = deployableTemplate(synthesized);
    const byType = new Map<string, number>();
    for (const d of Object.values(deployable.droppedResources)) byType.set(d.type, (byType.get(d.type) ?? 0) + 1);
    const types = [...byType].map(([t, n]) => `${t} x${n}`).join(', ');
    const { droppedParameters, droppedOutputs, droppedRules } = deployable;
    console.log(
      [
        `cdk-deploy: dropped ${Object.keys(deployable.droppedResources).length} resources: ${types}`,
        `parameters: ${droppedParameters.join(', ')}`,
        `outputs: ${droppedOutputs.join(', ')}`,
        `rules: ${droppedRules.join(', ')}`,
      ].join('\n  '),
    );

    await cfn.send(new CreateStackCommand({ StackName: stackName, TemplateBody: JSON.stringify(deployable.template) }));
    stackCreated = true;
    const status = await waitForStack(cfn, stackName, 'CREATE_COMPLETE', 60_000);
    if (status !== 'CREATE_COMPLETE')
      throw new Error(`stack ${stackName}: ${status}\n${await failures(cfn, stackName)}`);

    const resources = (await cfn.send(new DescribeStackResourcesCommand({ StackName: stackName }))).StackResources;
    physical = Object.fromEntries(
      (resources ?? []).map((r: StackResource) => [r.LogicalResourceId ?? '', r.PhysicalResourceId ?? '']),
    );
    const stack = (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
    outputs = Object.fromEntries((stack?.Outputs ?? []).map((o: Output) => [o.OutputKey ?? '', o.OutputValue ?? '']));

    // The alarm evaluates every period (60 s, as synthesized) from its creation: the message goes
    // into the DLQ now, so that the other checks run while the alarm's next evaluation comes.
    const jobs = await openQueue(outputs.JobsQueueUrl as string, {
      deadLetterQueueUrl: outputs.JobsDeadLetterQueueUrl,
      sqsEndpoint: endpoint(),
    });
    await jobs.send(['{"kind":"job","jobId":"poison"}']);
    const [poison] = await jobs.receive({ max: 1, waitMs: 5000 });
    if (poison === undefined) throw new Error('the jobs queue did not deliver the message sent through its output URL');
    await jobs.deadLetter(poison, 'JOB_INVALID: a test message for the DLQ alarm');
    deadLetteredAt = Date.now();
  });

  afterAll(async () => {
    // Only after a failure: the last test deletes the stack and checks that it is gone.
    if (stackCreated && !stackDeleted) {
      await emptyBuckets().catch(() => undefined);
      await cfn.send(new DeleteStackCommand({ StackName: stackName })).catch(() => undefined);
    }
    for (const c of [cfn, s3, sqs, cloudwatch]) c?.destroy();
  });

  async function emptyBuckets(): Promise<void> {
    for (const [id] of kept('AWS::S3::Bucket')) {
      const Bucket = physicalId(id);
      for (;;) {
        const page = await s3.send(new ListObjectVersionsCommand({ Bucket }));
        const objects = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].map((v) => ({
          Key: v.Key as string,
          VersionId: v.VersionId as string,
        }));
        if (objects.length === 0) break;
        await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: objects } }));
      }
    }
  }

  it('keeps only resources the emulator deploys, none referring to a dropped one', () => {
    const keptTypes = Object.values(deployable.template.Resources).map((r) => r.Type);
    for (const t of keptTypes)
      expect(
        UNDEPLOYABLE_TYPE_PREFIXES.some((p) => t.startsWith(p)),
        t,
      ).toBe(false);
    expect([...new Set(keptTypes)].sort()).toEqual([
      'AWS::CloudWatch::Alarm',
      'AWS::IAM::InstanceProfile',
      'AWS::IAM::Policy',
      'AWS::IAM::Role',
      'AWS::KMS::Key',
      'AWS::Logs::LogGroup',
      'AWS::S3::Bucket',
      'AWS::S3::BucketPolicy',
      'AWS::SNS::Topic',
      'AWS::SNS::TopicPolicy',
      'AWS::SQS::Queue',
      'AWS::SQS::QueuePolicy',
    ]);
    // Independent of the filter's own reference walk: no dropped name appears anywhere in what is kept.
    const body = JSON.stringify(deployable.template);
    const droppedNames = [...Object.keys(deployable.droppedResources), ...deployable.droppedParameters];
    expect(droppedNames.filter((id) => body.includes(id))).toEqual([]);
    expect([...Object.keys(deployable.template.Resources), ...Object.keys(deployable.droppedResources)].sort()).toEqual(
      Object.keys(synthesized.Resources).sort(),
    );
    // What the rest of this file uses, and what only the dropped parts used.
    expect(Object.keys(deployable.template.Outputs ?? {}).sort()).toEqual([
      'AlarmTopicArn',
      'ArtifactBucket',
      'EvaluationDeadLetterQueueUrl',
      'EvaluationQueueUrl',
      'JobsDeadLetterQueueUrl',
      'JobsQueueUrl',
    ]);
    expect(deployable.droppedRules).toEqual(['CheckBootstrapVersion']);
    expect(deployable.template.Parameters).toBeUndefined();
    // The scaling alarms of the trainer service go with their scaling policies, the functions'
    // alarms with the functions; the queues' alarms (DLQ depth, oldest message) stay.
    expect(kept('AWS::CloudWatch::Alarm').map(([id]) => id)).toEqual([
      expect.stringMatching(/^EvaluationQueueDeadLettersAlarm/),
      expect.stringMatching(/^EvaluationQueueOldestMessageAlarm/),
      expect.stringMatching(/^JobsQueueDeadLettersAlarm/),
      expect.stringMatching(/^JobsQueueOldestMessageAlarm/),
    ]);
  });

  it('deploys the artifact bucket versioned, encrypted, private and TLS-only', async () => {
    const bucketId = target(synthesized.Outputs?.ArtifactBucket?.Value);
    const Bucket = physicalId(bucketId);
    expect(outputs.ArtifactBucket).toBe(Bucket);
    await s3.send(new HeadBucketCommand({ Bucket }));
    expect((await s3.send(new GetBucketVersioningCommand({ Bucket }))).Status).toBe('Enabled');
    const encryption = await s3.send(new GetBucketEncryptionCommand({ Bucket }));
    expect(encryption.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault).toEqual(
      expect.objectContaining({ SSEAlgorithm: 'AES256' }),
    );
    expect((await s3.send(new GetPublicAccessBlockCommand({ Bucket }))).PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    const policy = JSON.parse((await s3.send(new GetBucketPolicyCommand({ Bucket }))).Policy ?? '{}') as {
      Statement: { Effect: string; Condition?: { Bool?: Record<string, string> }; Resource: string[] }[];
    };
    const tlsOnly = policy.Statement.find((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport']);
    expect(tlsOnly?.Condition?.Bool?.['aws:SecureTransport']).toBe('false');
    expect(tlsOnly?.Resource).toEqual(expect.arrayContaining([`arn:aws:s3:::${Bucket}`, `arn:aws:s3:::${Bucket}/*`]));

    // The output is what the parts get as METRICOPT_STORE (`s3://<bucket>/`).
    const store = await openObjectStore(`s3://${outputs.ArtifactBucket}/`, {
      s3Endpoint: endpoint(),
      s3ForcePathStyle: true,
    });
    await store.put('jobs/cfn-check/job.json', '{"v":1}');
    expect(await store.putIfAbsent('jobs/cfn-check/job.json', '{"v":2}')).toBe(false);
    expect(new TextDecoder().decode(await store.get('jobs/cfn-check/job.json'))).toBe('{"v":1}');
  });

  it('deploys both work queues with their DLQ redrive, encryption and visibility timeout as synthesized', async () => {
    for (const [queueOutput, dlqOutput] of [
      ['EvaluationQueueUrl', 'EvaluationDeadLetterQueueUrl'],
      ['JobsQueueUrl', 'JobsDeadLetterQueueUrl'],
    ] as const) {
      const queueId = target(synthesized.Outputs?.[queueOutput]?.Value);
      const dlqId = target(synthesized.Outputs?.[dlqOutput]?.Value);
      const want = props(queueId) as {
        VisibilityTimeout: number;
        RedrivePolicy: { maxReceiveCount: number; deadLetterTargetArn: unknown };
        SqsManagedSseEnabled: boolean;
        MessageRetentionPeriod: number;
      };
      expect(target(want.RedrivePolicy.deadLetterTargetArn)).toBe(dlqId);
      expect(outputs[queueOutput]).toBe(physicalId(queueId));
      expect(outputs[dlqOutput]).toBe(physicalId(dlqId));

      const attributes = async (QueueUrl: string | undefined) =>
        (await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }))).Attributes ?? {};
      const queue = await attributes(outputs[queueOutput]);
      const dlq = await attributes(outputs[dlqOutput]);
      expect(JSON.parse(queue.RedrivePolicy ?? '{}')).toEqual({
        deadLetterTargetArn: dlq.QueueArn,
        maxReceiveCount: want.RedrivePolicy.maxReceiveCount,
      });
      expect(want.RedrivePolicy.maxReceiveCount).toBe(5);
      expect(queue.VisibilityTimeout).toBe(String(want.VisibilityTimeout));
      expect(queue.MessageRetentionPeriod).toBe(String(want.MessageRetentionPeriod));
      expect(want.SqsManagedSseEnabled).toBe(true);
      expect(queue.SqsManagedSseEnabled).toBe('true');
      expect(dlq.SqsManagedSseEnabled).toBe('true');
    }
    // The evaluation queue's timeout follows the evaluator's (6 x (3 x 60 + 30) s); the jobs queue's is 15 min.
    expect(props(target(synthesized.Outputs?.EvaluationQueueUrl?.Value)).VisibilityTimeout).toBe(1260);
    expect(props(target(synthesized.Outputs?.JobsQueueUrl?.Value)).VisibilityTimeout).toBe(900);

    // Through the outputs and the repository's SQS adapter, as the evaluator and the trainer use them.
    const evaluation = await openQueue(outputs.EvaluationQueueUrl as string, {
      deadLetterQueueUrl: outputs.EvaluationDeadLetterQueueUrl,
      sqsEndpoint: endpoint(),
    });
    const [id] = await evaluation.send(['{"kind":"cfn-check"}']);
    const [message] = await evaluation.receive({ max: 1, waitMs: 5000 });
    expect(message).toMatchObject({ id, body: '{"kind":"cfn-check"}', receiveCount: 1 });
    await evaluation.ack(message?.receipt as string);
    expect(await evaluation.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });

  it('deploys each DLQ-depth alarm on its DLQ with the synthesized metric and threshold', async () => {
    const alarms = kept('AWS::CloudWatch::Alarm').filter(([id]) => id.includes('DeadLettersAlarm'));
    const names = alarms.map(([id]) => physicalId(id));
    const deployed = (await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: names }))).MetricAlarms ?? [];
    expect(deployed.map((a) => a.AlarmName).sort()).toEqual([...names].sort());
    for (const [id, alarm] of alarms) {
      const want = alarm.Properties as Record<string, unknown> & { Dimensions: { Name: string; Value: unknown }[] };
      const got = deployed.find((a) => a.AlarmName === physicalId(id)) as MetricAlarm;
      const dlqId = target(want.Dimensions[0]?.Value);
      expect(dlqId).toMatch(/DeadLetters/);
      const dlqName = physicalId(dlqId).split('/').pop();
      expect(got).toMatchObject({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: dlqName }],
        Statistic: want.Statistic,
        Period: want.Period,
        EvaluationPeriods: want.EvaluationPeriods,
        Threshold: want.Threshold,
        ComparisonOperator: want.ComparisonOperator,
        TreatMissingData: want.TreatMissingData,
        AlarmDescription: want.AlarmDescription,
      });
      expect(want).toMatchObject({ Statistic: 'Maximum', Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    }
  });

  it('deploys the roles with their inline policies, the instance profile and the log groups', async () => {
    const iam = new IAMClient(clients());
    const logs = new CloudWatchLogsClient(clients());
    try {
      const roles = kept('AWS::IAM::Role');
      // The evaluator's, the value API's, the flow logs', the GPU instances', the trainer's two and
      // the AwsCustomResource singleton's (it force-deletes the GPU instance group on destroy).
      expect(roles.length).toBe(7);
      for (const [id] of roles) {
        const got = (await iam.send(new GetRoleCommand({ RoleName: physicalId(id) }))).Role;
        const trust = JSON.parse(decodeURIComponent(got?.AssumeRolePolicyDocument ?? '{}'));
        expect(trust.Statement, id).toEqual((props(id).AssumeRolePolicyDocument as { Statement: unknown }).Statement);
      }
      for (const [id, policy] of kept('AWS::IAM::Policy')) {
        const p = policy.Properties as {
          PolicyName: string;
          Roles: unknown[];
          PolicyDocument: { Statement: { Action: unknown }[] };
        };
        for (const role of p.Roles) {
          const got = await iam.send(
            new GetRolePolicyCommand({ RoleName: physicalId(target(role)), PolicyName: p.PolicyName }),
          );
          const doc = JSON.parse(decodeURIComponent(got.PolicyDocument ?? '{}')) as {
            Statement: { Action: unknown }[];
          };
          expect(
            doc.Statement.map((s) => s.Action),
            id,
          ).toEqual(p.PolicyDocument.Statement.map((s) => s.Action));
        }
      }
      for (const [id] of kept('AWS::IAM::InstanceProfile')) {
        const got = (await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: physicalId(id) })))
          .InstanceProfile;
        const roleIds = (props(id).Roles as unknown[]).map(target);
        expect(got?.Roles?.map((r) => r.RoleName)).toEqual(roleIds.map(physicalId));
      }
      const groups = kept('AWS::Logs::LogGroup').map(([id]) => physicalId(id));
      // The evaluator's, the value API's, the flow logs', the trainer's and the force-delete
      // custom resource's (its function is not deployable here; its group is).
      expect(groups.length).toBe(5);
      for (const name of groups) {
        const found = (await logs.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: name }))).logGroups ?? [];
        expect(found.map((g) => g.logGroupName)).toContain(name);
      }
    } finally {
      iam.destroy();
      logs.destroy();
    }
  });

  it('puts the jobs DLQ alarm in ALARM once a message is dead-lettered', async () => {
    const [alarmId] = kept('AWS::CloudWatch::Alarm').find(([id]) => id.startsWith('JobsQueueDeadLettersAlarm')) ?? [];
    const AlarmNames = [physicalId(alarmId as string)];
    // One evaluation period (60 s) from the alarm's creation, plus the emulator's 5-s SQS metric report.
    const deadline = deadLetteredAt + 90_000;
    let alarm: MetricAlarm | undefined;
    while (Date.now() < deadline && alarm?.StateValue !== 'ALARM') {
      await new Promise((r) => setTimeout(r, 1000));
      alarm = (await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames }))).MetricAlarms?.[0];
    }
    if (alarm?.StateValue !== 'ALARM') {
      const history = await cloudwatch.send(new DescribeAlarmHistoryCommand({ AlarmName: AlarmNames[0] }));
      const data = await cloudwatch.send(
        new GetMetricDataCommand({
          StartTime: new Date(Date.now() - 180_000),
          EndTime: new Date(),
          MetricDataQueries: [
            {
              Id: 'dlq',
              MetricStat: {
                Metric: {
                  Namespace: alarm?.Namespace,
                  MetricName: alarm?.MetricName,
                  Dimensions: alarm?.Dimensions,
                },
                Period: 10,
                Stat: 'Maximum',
              },
            },
          ],
        }),
      );
      console.log(
        `DEBUG dead-lettered at ${new Date(deadLetteredAt).toISOString()}`,
        JSON.stringify(history.AlarmHistoryItems?.map((h) => [h.Timestamp, h.HistorySummary])),
        JSON.stringify(data.MetricDataResults),
      );
    }
    expect(alarm?.StateValue, alarm?.StateReason).toBe('ALARM');
    // The evaluation DLQ is empty, so its alarm stays out of ALARM.
    const [otherId] =
      kept('AWS::CloudWatch::Alarm').find(([id]) => id.startsWith('EvaluationQueueDeadLettersAlarm')) ?? [];
    const other = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: [physicalId(otherId as string)] }));
    expect(other.MetricAlarms?.[0]?.StateValue).not.toBe('ALARM');
  });

  it('deletes the stack, keeping the buckets and log groups it retains, which are then removed', async () => {
    await emptyBuckets();
    await cfn.send(new DeleteStackCommand({ StackName: stackName }));
    const status = await waitForStack(cfn, stackName, 'DELETE_COMPLETE', 60_000);
    if (status !== 'DELETE_COMPLETE')
      throw new Error(`stack ${stackName}: ${status}\n${await failures(cfn, stackName)}`);
    stackDeleted = true;
    for (const output of [
      'EvaluationQueueUrl',
      'EvaluationDeadLetterQueueUrl',
      'JobsQueueUrl',
      'JobsDeadLetterQueueUrl',
    ]) {
      await expect(
        sqs.send(new GetQueueAttributesCommand({ QueueUrl: outputs[output], AttributeNames: ['QueueArn'] })),
        output,
      ).rejects.toThrow(/NonExistentQueue|does not exist/);
    }
    // What holds data outlives the stack (README, "Teardown"): the buckets and the log groups.
    const buckets = kept('AWS::S3::Bucket');
    const groups = kept('AWS::Logs::LogGroup');
    for (const [id, r] of [...buckets, ...groups]) expect(r.DeletionPolicy, id).toBe('Retain');
    const logs = new CloudWatchLogsClient(clients());
    try {
      for (const [id] of buckets) {
        await s3.send(new HeadBucketCommand({ Bucket: physicalId(id) }));
        await s3.send(new DeleteBucketCommand({ Bucket: physicalId(id) }));
      }
      for (const [id] of groups) {
        const found = await logs.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: physicalId(id) }));
        expect(
          found.logGroups?.map((g) => g.logGroupName),
          id,
        ).toContain(physicalId(id));
        await logs.send(new DeleteLogGroupCommand({ logGroupName: physicalId(id) }));
      }
    } finally {
      logs.destroy();
    }
  });
});

const FAILED = /(_FAILED|ROLLBACK_COMPLETE|ROLLBACK_FAILED)$/;

/** Polls the stack until `want`, a failed state or the deadline; returns the last status. */
async function waitForStack(cfn: CloudFormationClient, name: string, want: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let status = 'UNKNOWN';
  while (Date.now() < deadline) {
    try {
      status = (await cfn.send(new DescribeStacksCommand({ StackName: name }))).Stacks?.[0]?.StackStatus ?? 'GONE';
    } catch (e) {
      // A deleted stack may stop being described by name.
      if (want === 'DELETE_COMPLETE' && /does not exist/.test(String(e))) return want;
      throw e;
    }
    if (status === want || FAILED.test(status)) return status;
    await new Promise((r) => setTimeout(r, 500));
  }
  return `${status} (still, after ${timeoutMs / 1000} s)`;
}

/** The failed resources' status reasons, one a line. */
async function failures(cfn: CloudFormationClient, name: string): Promise<string> {
  const events = (await cfn.send(new DescribeStackEventsCommand({ StackName: name }))).StackEvents ?? [];
  return events
    .filter((e) => /FAILED/.test(e.ResourceStatus ?? ''))
    .map((e) => `${e.LogicalResourceId} (${e.ResourceType}) ${e.ResourceStatus}: ${e.ResourceStatusReason}`)
    .join('\n');
}
