import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { AssetManifestArtifact } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricOptStack } from '../../lib/metricopt-stack.js';
import { gpusPerInstance, parseSettings, SettingsError, settingsFromContext } from '../../lib/settings.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { jobKeys, observationBatchKey, resultKey, valueFunctionOwnerKey } from '../../shared/storage/layout.js';
import { messageFor } from '../evaluation/fixtures.js';
import {
  ENV_VARIANT,
  KEY_HASH,
  SECRET_ARN,
  type Synthesized,
  synthesizeVariants,
  VARIANTS,
  type VariantName,
} from './synth-fixtures.js';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

const variantNames = Object.keys(VARIANTS) as VariantName[];

/** Every IAM statement of the roles whose path contains `part`, by role policy. */
function statementsOf(template: Template, part: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy') as Resources;
  return Object.entries(policies)
    .filter(([id]) => id.includes(part))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
/** The key pattern of a `<bucket arn>/<pattern>` resource, or '(bucket)' for the bucket ARN itself. */
function s3Patterns(s: Statement): string[] {
  const resources = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
  return resources.map((r) => {
    const join = (r as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
    return join ? String(join[1][1]).replace(/^\//, '') : '(bucket)';
  });
}
/** The actions each key pattern of the bucket is granted in these statements. */
function s3Grants(statements: Statement[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of statements.filter((st) => actionsOf(st).some((a) => a.startsWith('s3:')))) {
    for (const p of s3Patterns(s)) out[p] = [...(out[p] ?? []), ...actionsOf(s)].sort();
  }
  return out;
}

type Resource = { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] };
/** A custom resource handler that CDK provides (the default-SG restriction, AwsCustomResource's singleton). */
const cdkProvided = ([id, f]: [string, { Properties: Record<string, unknown> }]) =>
  f.Properties.Handler === '__entrypoint__.handler' || id.startsWith('AWS679f53fac002430cb0da5b7982bd2287');

/** The folder of a function's code asset in the cloud assembly (named by the hash in its S3 key). */
function functionAssetDir(synth: Synthesized, name: VariantName, fn: NodejsFunction): string {
  const logicalId = synth.stacks[name].getLogicalId(fn.node.defaultChild as CfnFunction);
  const code = synth.templates[name].toJSON().Resources[logicalId].Properties.Code as { S3Key: string };
  return join(synth.assembly.directory, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
}

/** A step-scaling alarm of the template: when it is in ALARM, and the task count its policy sets then. */
function scalingAlarms(template: Template): { inAlarm: (v: number) => boolean; capacity: (v: number) => number }[] {
  const resources = template.toJSON().Resources as Resources;
  type Step = { MetricIntervalLowerBound?: number; MetricIntervalUpperBound?: number; ScalingAdjustment: number };
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
    .map((r) => {
      const ref = (r.Properties.AlarmActions as { Ref?: string }[] | undefined)?.[0]?.Ref;
      const policy = ref === undefined ? undefined : resources[ref];
      return { alarm: r.Properties, policy };
    })
    .filter(({ policy }) => policy?.Type === 'AWS::ApplicationAutoScaling::ScalingPolicy')
    .map(({ alarm, policy }) => {
      const threshold = alarm.Threshold as number;
      const op = alarm.ComparisonOperator as string;
      const config = policy?.Properties.StepScalingPolicyConfiguration as {
        AdjustmentType: string;
        StepAdjustments: Step[];
      };
      expect(config.AdjustmentType).toBe('ExactCapacity');
      const inAlarm = (v: number) =>
        op === 'GreaterThanOrEqualToThreshold'
          ? v >= threshold
          : op === 'GreaterThanThreshold'
            ? v > threshold
            : op === 'LessThanOrEqualToThreshold'
              ? v <= threshold
              : v < threshold;
      // Application Auto Scaling: for an alarm on the upper side a step's lower bound is inclusive
      // and its upper bound exclusive; on the lower side, the other way round.
      const above = op.startsWith('Greater');
      const capacity = (v: number) => {
        const d = v - threshold;
        const step = config.StepAdjustments.find((s) => {
          const lo = s.MetricIntervalLowerBound ?? Number.NEGATIVE_INFINITY;
          const hi = s.MetricIntervalUpperBound ?? Number.POSITIVE_INFINITY;
          return above ? d >= lo && d < hi : d > lo && d <= hi;
        });
        if (!step) throw new Error(`no step for backlog ${v} (threshold ${threshold})`);
        return step.ScalingAdjustment;
      };
      return { inAlarm, capacity };
    });
}

function sqsRecord(messageId: string, body: string) {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body,
    attributes: { ApproximateReceiveCount: '1', SentTimestamp: '1700000000000', SenderId: 'trainer' },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:evaluations',
    awsRegion: 'eu-west-1',
  };
}

/** The trainer image's entry in a stack's asset manifest (staged, never built at synth). */
function trainerImage(
  synth: Synthesized,
  name: VariantName,
): { directory: string; dockerFile: string; platform: string } {
  const manifest = synth.assembly
    .getStackArtifact(synth.stacks[name].artifactId)
    .dependencies.find((a): a is AssetManifestArtifact => a instanceof AssetManifestArtifact);
  const images = (
    JSON.parse(readFileSync(manifest?.file as string, 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform: string } }>;
    }
  ).dockerImages;
  const sources = Object.values(images).map((i) => i.source);
  expect(sources).toHaveLength(1);
  return sources[0] as { directory: string; dockerFile: string; platform: string };
}

describe('MetricOptStack', () => {
  let synth: Synthesized;
  let t: Template;
  beforeAll(() => {
    synth = synthesizeVariants();
    t = synth.templates.iamOnDemandG5;
  });
  afterAll(() => synth.cleanup());

  describe('every setting variant', () => {
    it.each(variantNames)('%s passes the cdk-nag AwsSolutions checks with no unacknowledged finding', (name) => {
      const report = new AwsSolutionsChecks(synth.stacks[name], { verbose: true }).validateScope(synth.stacks[name]);
      expect(report.violations.map((v) => `${v.ruleName} at ${JSON.stringify(v.violatingResources)}`)).toEqual([]);
      expect(report.success).toBe(true);
    });

    it.each(variantNames)('%s has every output', (name) => {
      const outputs = Object.keys(synth.templates[name].findOutputs('*'));
      for (const prefix of [
        'ArtifactBucket',
        'EvaluationQueueUrl',
        'EvaluationDeadLetterQueueUrl',
        'JobsQueueUrl',
        'JobsDeadLetterQueueUrl',
        'TrainingClusterArn',
        'TrainerTaskDefinitionArn',
        'ValueApiUrl',
        'AlarmTopicArn',
      ]) {
        expect(outputs.some((o) => o.startsWith(prefix))).toBe(true);
      }
    });
  });

  describe('artifact bucket', () => {
    it('is encrypted, versioned, private, logged to a second bucket and TLS-only', () => {
      t.hasResourceProperties('AWS::S3::Bucket', {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        VersioningConfiguration: { Status: 'Enabled' },
        LoggingConfiguration: { DestinationBucketName: { Ref: Match.stringLikeRegexp('ArtifactsAccessLogs') } },
      });
      const policies = Object.values(t.findResources('AWS::S3::BucketPolicy') as Resources);
      expect(policies).toHaveLength(2);
      for (const policy of policies) expect(JSON.stringify(policy)).toContain('"aws:SecureTransport":"false"');
    });

    it('expires job data and old checkpoint versions, and keeps current checkpoints', () => {
      t.hasResourceProperties('AWS::S3::Bucket', {
        VersioningConfiguration: { Status: 'Enabled' },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({
              Prefix: 'jobs/',
              ExpirationInDays: 30,
              NoncurrentVersionExpiration: { NoncurrentDays: 1 },
            }),
            Match.objectLike({ Prefix: 'value-functions/', NoncurrentVersionExpiration: { NoncurrentDays: 90 } }),
          ]),
        },
      });
      const rules = JSON.stringify(t.findResources('AWS::S3::Bucket'));
      expect(rules).not.toMatch(/"Prefix":"value-functions\/","ExpirationInDays"/);
    });
  });

  describe('queues', () => {
    it('encrypts and enforces TLS on all four queues, and redrives both work queues to their DLQ', () => {
      const queues = t.findResources('AWS::SQS::Queue') as Resources;
      expect(Object.keys(queues)).toHaveLength(4);
      for (const q of Object.values(queues)) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
      for (const [queue, dlq] of [
        ['EvaluationQueue', 'EvaluationQueueDeadLetters'],
        ['JobsQueue', 'JobsQueueDeadLetters'],
      ]) {
        const main = Object.entries(queues).find(([id]) => new RegExp(`^${queue}[0-9A-F]{8}$`).test(id))?.[1];
        expect(main?.Properties.RedrivePolicy).toEqual({
          deadLetterTargetArn: { 'Fn::GetAtt': [expect.stringMatching(new RegExp(`^${dlq}`)), 'Arn'] },
          maxReceiveCount: 5,
        });
      }
      // A DLQ keeps a message from its first enqueue: it must retain longer than its source.
      for (const [id, q] of Object.entries(queues)) {
        expect(q.Properties.MessageRetentionPeriod).toBe(id.includes('DeadLetters') ? 14 * 86400 : 7 * 86400);
      }
      const policies = JSON.stringify(t.findResources('AWS::SQS::QueuePolicy'));
      expect(policies.match(/"aws:SecureTransport":"false"/g)).toHaveLength(4);
    });

    it('alarms as soon as a message reaches either dead-letter queue', () => {
      const alarms = Object.values(t.findResources('AWS::CloudWatch::Alarm') as Resources).filter(
        (a) => a.Properties.MetricName === 'ApproximateNumberOfMessagesVisible',
      );
      const watched = alarms.map((a) => JSON.stringify(a.Properties.Dimensions));
      expect(watched.some((d) => d.includes('EvaluationQueueDeadLetters'))).toBe(true);
      expect(watched.some((d) => d.includes('JobsQueueDeadLetters'))).toBe(true);
      for (const a of alarms) {
        expect(a.Properties).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
      }
    });

    it("gives the evaluation queue six times the evaluator function's timeout as visibility timeout", () => {
      const fn = Object.values(t.findResources('AWS::Lambda::Function') as Resources).find(
        (f) => (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables.METRICOPT_DLQ_URL,
      );
      // 3 attempts x 60 s evaluator timeout + 30 s.
      expect(fn?.Properties.Timeout).toBe(210);
      t.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 6 * 210 });
    });
  });

  describe('evaluator function', () => {
    it('consumes the evaluation queue in batches, reporting batch item failures', () => {
      t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EvaluationQueue'), 'Arn'] },
        BatchSize: 5,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
      });
    });

    it('caps the event source at the reserved concurrency, so the poller never drives the function into throttles', () => {
      for (const name of variantNames) {
        const reserved = synth.stacks[name].settings.evaluatorReservedConcurrency;
        synth.templates[name].hasResourceProperties('AWS::Lambda::EventSourceMapping', {
          ScalingConfig: { MaximumConcurrency: reserved },
        });
        synth.templates[name].hasResourceProperties('AWS::Lambda::Function', {
          ReservedConcurrentExecutions: reserved,
        });
      }
      expect(synth.stacks.apiKeySpotG5Extras.settings.evaluatorReservedConcurrency).toBe(7);
    });

    it('has reserved concurrency and the worker environment', () => {
      t.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'nodejs24.x',
        ReservedConcurrentExecutions: 5,
        Environment: {
          Variables: {
            METRICOPT_STORE: { 'Fn::Join': ['', ['s3://', { Ref: Match.stringLikeRegexp('^ArtifactsBucket') }, '/']] },
            METRICOPT_DLQ_URL: { Ref: Match.stringLikeRegexp('^EvaluationQueueDeadLetters') },
            METRICOPT_MAX_RECEIVE_COUNT: '5',
            METRICOPT_EVALUATOR_TIMEOUT_MS: '60000',
            NODE_OPTIONS: '--enable-source-maps',
          },
        },
      });
    });

    it('names the webhook secret by ARN, never its value, and may read only that secret', () => {
      const extras = synth.templates.apiKeySpotG5Extras;
      extras.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            METRICOPT_WEBHOOKS:
              '[{"name":"house-metric","url":"https://metrics.example/score","direction":"maximize"}]',
            METRICOPT_WEBHOOK_SECRET_ARN: SECRET_ARN,
            METRICOPT_EVALUATOR_MODULES: '/var/task/evaluators/1-positive-rate.evaluator.mjs',
          }),
        },
      });
      expect(JSON.stringify(extras.toJSON())).not.toContain('METRICOPT_WEBHOOK_SECRET"');
      const secretReads = statementsOf(extras, 'Evaluator').filter((s) =>
        actionsOf(s).includes('secretsmanager:GetSecretValue'),
      );
      expect(secretReads).toEqual([{ Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: SECRET_ARN }]);
    });

    it('bundles the handler with a user evaluator module, and the bundle evaluates a queued query with it', async () => {
      const code = functionAssetDir(synth, 'apiKeySpotG5Extras', synth.stacks.apiKeySpotG5Extras.evaluator.fn);
      const module = join(code, 'evaluators/1-positive-rate.evaluator.mjs');
      expect(existsSync(module)).toBe(true);
      // The bundle leaves the AWS SDK to the Lambda runtime: resolve it from the project here.
      symlinkSync(join(process.cwd(), 'node_modules'), join(synth.assembly.directory, 'node_modules'));
      const storeDir = mkdtempSync(join(tmpdir(), 'metricopt-eval-store-'));
      try {
        const store = new FsObjectStore(storeDir);
        const message = await messageFor(store, {
          jobId: 'job-1',
          key: 'q1',
          evaluator: 'positive-rate',
          scores: Float32Array.from([0.9, 0.2, 0.7, 0.1]),
          labels: Int32Array.from([1, 0, 0, 0]),
        });
        Object.assign(process.env, {
          AWS_REGION: 'eu-west-1',
          METRICOPT_STORE: storeDir,
          METRICOPT_DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/evaluation-dlq',
          // In Lambda: /var/task/evaluators/1-positive-rate.evaluator.mjs (the template's value).
          METRICOPT_EVALUATOR_MODULES: module,
          POWERTOOLS_LOG_LEVEL: 'SILENT',
        });
        const { handler } = (await import(pathToFileURL(join(code, 'index.mjs')).href)) as {
          handler: (event: unknown, context: unknown) => Promise<{ batchItemFailures: unknown[] }>;
        };
        const response = await handler(
          { Records: [sqsRecord('m1', JSON.stringify(message))] },
          { functionName: 'evaluator', awsRequestId: 'r1' },
        );
        expect(response.batchItemFailures).toEqual([]);
        const result = JSON.parse(new TextDecoder().decode((await store.get(resultKey('job-1', 'q1'))) as Uint8Array));
        expect(result.outcome).toMatchObject({ ok: true, value: 0.5, direction: 'minimize' });
      } finally {
        rmSync(storeDir, { recursive: true, force: true });
      }
    });
  });

  describe('value API', () => {
    it('is served from a function URL on the live alias with IAM auth, or with API keys checked by the app', () => {
      t.hasResourceProperties('AWS::Lambda::Url', {
        AuthType: 'AWS_IAM',
        Qualifier: 'live',
      });
      t.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            METRICOPT_AUTH: 'iam',
            METRICOPT_JOBS_QUEUE: { Ref: Match.stringLikeRegexp('^JobsQueue(?!DeadLetters)') },
            METRICOPT_JOBS_DLQ: { Ref: Match.stringLikeRegexp('^JobsQueueDeadLetters') },
          }),
        },
      });
      const keyed = synth.templates.apiKeyOnDemandG4dn;
      keyed.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
      keyed.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            METRICOPT_AUTH: 'api-key',
            METRICOPT_API_KEY_HASHES: VARIANTS.apiKeyOnDemandG4dn.valueApiKeyHashes[0],
          }),
        },
      });
    });

    it('keeps instances warm only when provisioned concurrency is set', () => {
      t.hasResourceProperties('AWS::Lambda::Alias', { Name: 'live', ProvisionedConcurrencyConfig: Match.absent() });
      synth.templates.apiKeySpotG5Extras.hasResourceProperties('AWS::Lambda::Alias', {
        Name: 'live',
        ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 },
      });
    });
  });

  describe('training cluster', () => {
    it('launches the ECS GPU AMI on the GPU instance type from a launch template with IMDSv2 and an encrypted volume', () => {
      t.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: Match.objectLike({
          InstanceType: Match.absent(),
          ImageId: { Ref: Match.stringLikeRegexp('amiamazonlinux2023gpurecommendedimageid') },
          MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
          BlockDeviceMappings: [
            { DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeSize: 100, VolumeType: 'gp3' } },
          ],
        }),
      });
      const userData = (variant: VariantName) =>
        JSON.stringify(synth.templates[variant].findResources('AWS::EC2::LaunchTemplate'));
      expect(userData('iamOnDemandG5')).toContain('echo ECS_CLUSTER=');
      expect(userData('iamOnDemandG5')).not.toContain('ECS_ENABLE_SPOT_INSTANCE_DRAINING');
      expect(userData('iamSpotG4dn')).toContain('ECS_ENABLE_SPOT_INSTANCE_DRAINING=true');
      const parameters = JSON.stringify(t.toJSON().Parameters);
      expect(parameters).toContain('/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id');
      for (const name of variantNames) {
        synth.templates[name].resourceCountIs('AWS::AutoScaling::LaunchConfiguration', 0);
      }
    });

    it('runs on-demand instances of the listed types in order by default, spot ones when trainerSpot is on', () => {
      const overrides = (types: string[]) => types.map((InstanceType) => ({ InstanceType }));
      t.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
        MinSize: '0',
        MaxSize: '2',
        LaunchTemplate: Match.absent(),
        MixedInstancesPolicy: {
          InstancesDistribution: Match.objectLike({
            OnDemandAllocationStrategy: 'prioritized',
            OnDemandPercentageAboveBaseCapacity: 100,
          }),
          LaunchTemplate: {
            LaunchTemplateSpecification: Match.anyValue(),
            Overrides: overrides(['g5.xlarge', 'g5.2xlarge']),
          },
        },
      });
      synth.templates.iamSpotG4dn.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
        LaunchTemplate: Match.absent(),
        MixedInstancesPolicy: {
          InstancesDistribution: Match.objectLike({
            OnDemandBaseCapacity: 0,
            OnDemandPercentageAboveBaseCapacity: 0,
            SpotAllocationStrategy: 'price-capacity-optimized',
          }),
          LaunchTemplate: {
            LaunchTemplateSpecification: Match.anyValue(),
            Overrides: overrides(['g4dn.xlarge', 'g4dn.2xlarge', 'g4dn.4xlarge']),
          },
        },
      });
      synth.templates.apiKeySpotG5Extras.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
        MinSize: '1',
        MaxSize: '3',
      });
    });

    it("spreads the GPU fleet over every AZ of the stack's region (two when synthesized without one)", () => {
      t.resourceCountIs('AWS::EC2::Subnet', 2);
      synth.templates[ENV_VARIANT.name].resourceCountIs('AWS::EC2::Subnet', ENV_VARIANT.azs.length);
      synth.templates[ENV_VARIANT.name].hasResourceProperties('AWS::EC2::Subnet', {
        AvailabilityZone: ENV_VARIANT.azs.at(-1),
      });
    });

    it('lets ECS manage scaling and termination protection, so no drain-hook Lambda is needed', () => {
      t.hasResourceProperties('AWS::ECS::CapacityProvider', {
        AutoScalingGroupProvider: Match.objectLike({
          ManagedScaling: Match.objectLike({ Status: 'ENABLED', TargetCapacity: 100 }),
          ManagedTerminationProtection: 'ENABLED',
          ManagedDraining: 'ENABLED',
        }),
      });
      // The evaluator, the value API and two CDK-provided custom resource handlers (no drain hook).
      const functions = Object.entries(t.findResources('AWS::Lambda::Function') as Resources);
      expect(functions).toHaveLength(4);
      expect(functions.filter((f) => !cdkProvided(f)).map(([id]) => id.replace(/Function.*/, ''))).toEqual([
        'Evaluator',
        'ValueApi',
      ]);
    });

    it('force-deletes the instance group on destroy, after the trainer service and before the group', () => {
      const resources = t.toJSON().Resources as Record<string, Resource>;
      const [id, forceDelete] = Object.entries(resources).find(([, r]) => r.Type === 'Custom::AWS') ?? [];
      // The SDK call is a JSON string joined with the group's name (a Ref).
      const text = JSON.stringify(forceDelete?.Properties.Delete ?? null).replace(/\\"/g, '"');
      expect(text).toContain('"action":"deleteAutoScalingGroup"');
      expect(text).toContain('"ForceDelete":true');
      expect(text).toContain('TrainingInstancesASG');
      expect(forceDelete?.Properties.Create).toBeUndefined();
      // CloudFormation deletes dependents first: the service (tasks stopped), then this, then the group.
      const service = Object.values(resources).find((r) => r.Type === 'AWS::ECS::Service');
      expect(service?.DependsOn).toContain(id);
      const policy = Object.values(resources).find(
        (r) =>
          r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties).includes('autoscaling:DeleteAutoScalingGroup'),
      );
      expect(JSON.stringify(policy?.Properties)).toContain('autoScalingGroupName/');
    });

    it("removes every rule from the VPC's default security group (nothing uses it)", () => {
      t.resourceCountIs('Custom::VpcRestrictDefaultSG', 1);
    });

    it('defines a trainer task with one GPU, the image asset of gpu-tasks/Dockerfile and the queue-worker environment', () => {
      t.hasResourceProperties('AWS::ECS::TaskDefinition', {
        RequiresCompatibilities: ['EC2'],
        ContainerDefinitions: [
          Match.objectLike({
            ResourceRequirements: [{ Type: 'GPU', Value: '1' }],
            Image: { 'Fn::Sub': Match.stringLikeRegexp('cdk-hnb659fds-container-assets') },
            StopTimeout: 90,
            Environment: [
              {
                Name: 'METRICOPT_STORE',
                Value: { 'Fn::Join': ['', ['s3://', { Ref: Match.stringLikeRegexp('^ArtifactsBucket') }, '/']] },
              },
              { Name: 'METRICOPT_JOBS_QUEUE', Value: { Ref: Match.stringLikeRegexp('^JobsQueue(?!DeadLetters)') } },
              { Name: 'METRICOPT_JOBS_DLQ', Value: { Ref: Match.stringLikeRegexp('^JobsQueueDeadLetters') } },
              {
                Name: 'METRICOPT_EVALUATION_QUEUE',
                Value: { Ref: Match.stringLikeRegexp('^EvaluationQueue(?!DeadLetters)') },
              },
              {
                Name: 'METRICOPT_EVALUATION_DLQ',
                Value: { Ref: Match.stringLikeRegexp('^EvaluationQueueDeadLetters') },
              },
              { Name: 'METRICOPT_BACKEND', Value: 'tensorflow' },
              { Name: 'CUDA_CACHE_PATH', Value: '/var/cache/cuda' },
              { Name: 'CUDA_CACHE_MAXSIZE', Value: String(4 * 1024 ** 3) },
            ],
            MountPoints: [{ ContainerPath: '/var/cache/cuda', SourceVolume: 'cuda-cache', ReadOnly: false }],
            LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
          }),
        ],
      });
      expect(trainerImage(synth, 'iamOnDemandG5')).toMatchObject({
        dockerFile: 'gpu-tasks/Dockerfile',
        platform: 'linux/amd64',
      });
    });

    it('stages a build context with the production dependencies only, without calling Docker', () => {
      const context = join(synth.assembly.directory, trainerImage(synth, 'iamOnDemandG5').directory);
      expect(existsSync(join(context, 'gpu-tasks/Dockerfile'))).toBe(true);
      expect(existsSync(join(context, 'package-lock.json'))).toBe(true);
      expect(existsSync(join(context, 'node_modules/zod/package.json'))).toBe(true);
      expect(existsSync(join(context, 'node_modules/@tensorflow/tfjs-backend-wasm/package.json'))).toBe(true);
      for (const absent of [
        'node_modules/vitest',
        'node_modules/aws-cdk-lib',
        'node_modules/typescript',
        'lib',
        'test',
        'shared',
        'cdk.out',
      ]) {
        expect(existsSync(join(context, absent)), absent).toBe(false);
      }
    });

    it('runs trainers as a service scaled on the jobs backlog between 0 and trainerMaxInstances tasks', () => {
      t.hasResourceProperties('AWS::ECS::Service', {
        DesiredCount: 0,
        CapacityProviderStrategy: [{ CapacityProvider: Match.anyValue(), Weight: 1 }],
      });
      t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 0, MaxCapacity: 2 });
      t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
        PolicyType: 'StepScaling',
        StepScalingPolicyConfiguration: Match.objectLike({ AdjustmentType: 'ExactCapacity' }),
      });
      const alarms = JSON.stringify(t.findResources('AWS::CloudWatch::Alarm'));
      expect(alarms).toContain('waiting + inFlight');
      expect(alarms).toContain('ApproximateNumberOfMessagesNotVisible');
    });
    it.each(variantNames)(
      '%s scales to exactly min(backlog, max) trainers, and no backlog puts both scaling alarms in ALARM',
      (name) => {
        const template = synth.templates[name];
        const s = synth.stacks[name].settings;
        // One task per GPU: trainerMaxInstances instances of the listed types.
        const max = s.trainerMaxInstances * gpusPerInstance(s.gpuInstanceTypes[0] as string);
        const alarms = scalingAlarms(template);
        expect(alarms).toHaveLength(2);
        // The backlog statistic is a 1-minute maximum of whole counts; check halves too.
        for (let v = 0; v <= max + 3; v += 0.5) {
          const firing = alarms.filter((a) => a.inAlarm(v));
          expect(firing.length, `backlog ${v}: alarms in ALARM`).toBeLessThanOrEqual(1);
          if (Number.isInteger(v)) {
            expect(firing.length, `backlog ${v}: no alarm in ALARM`).toBe(1);
            expect(firing[0]?.capacity(v), `backlog ${v}: tasks`).toBe(Math.min(v, max));
          }
        }
      },
    );
  });

  describe('alarms', () => {
    /** The alarms that are not step-scaling triggers, by metric name. */
    const alertAlarms = (template: Template) => {
      const resources = template.toJSON().Resources as Resources;
      return Object.values(template.findResources('AWS::CloudWatch::Alarm') as Resources).filter((a) => {
        const ref = (a.Properties.AlarmActions as { Ref?: string }[])[0]?.Ref;
        return ref === undefined || resources[ref]?.Type !== 'AWS::ApplicationAutoScaling::ScalingPolicy';
      });
    };
    const byMetric = (template: Template, name: string) =>
      alertAlarms(template).filter((a) => a.Properties.MetricName === name);

    it('sends every alarm and failure event to a KMS-encrypted, TLS-only topic the stack creates', () => {
      const topics = Object.entries(t.findResources('AWS::SNS::Topic') as Resources);
      expect(topics).toHaveLength(1);
      const [topicId, topic] = topics[0] as [string, Resources[string]];
      const keyId = (topic.Properties.KmsMasterKeyId as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const key = (t.toJSON().Resources as Resources)[keyId];
      expect(key?.Properties.EnableKeyRotation).toBe(true);
      const keyPolicy = JSON.stringify(key?.Properties.KeyPolicy);
      expect(keyPolicy).toContain('cloudwatch.amazonaws.com');
      expect(keyPolicy).toContain('events.amazonaws.com');
      expect(JSON.stringify(t.findResources('AWS::SNS::TopicPolicy'))).toContain('"aws:SecureTransport":"false"');
      const alarms = alertAlarms(t);
      expect(alarms).toHaveLength(8);
      for (const a of alarms) expect(a.Properties.AlarmActions).toEqual([{ Ref: topicId }]);
      const rules = Object.values(t.findResources('AWS::Events::Rule') as Resources);
      expect(rules).toHaveLength(3);
      for (const r of rules) {
        expect((r.Properties.Targets as { Arn: unknown }[]).map((x) => x.Arn)).toEqual([{ Ref: topicId }]);
      }
      expect(JSON.stringify(t.findResources('AWS::SNS::TopicPolicy'))).toContain('events.amazonaws.com');
    });

    it('notifies an existing topic instead when alarmTopicArn is given, and creates none', () => {
      const extras = synth.templates.apiKeySpotG5Extras;
      extras.resourceCountIs('AWS::SNS::Topic', 0);
      const arn = 'arn:aws:sns:eu-west-1:123456789012:ops';
      for (const a of alertAlarms(extras)) expect(a.Properties.AlarmActions).toEqual([arn]);
      for (const r of Object.values(extras.findResources('AWS::Events::Rule') as Resources)) {
        expect((r.Properties.Targets as { Arn: unknown }[]).map((x) => x.Arn)).toEqual([arn]);
      }
    });

    it("alarms on both queues' oldest message, both DLQs, and each function's errors and throttles", () => {
      const age = byMetric(t, 'ApproximateAgeOfOldestMessage');
      const thresholds = (alarms: Resources[string][]) =>
        Object.fromEntries(
          alarms.map((a) => [
            JSON.stringify(a.Properties.Dimensions).match(/"(\w+Queue)[0-9A-F]{8}"/)?.[1],
            a.Properties.Threshold,
          ]),
        );
      expect(thresholds(age)).toEqual({ EvaluationQueue: 15 * 60, JobsQueue: 360 * 60 });
      expect(thresholds(byMetric(synth.templates.apiKeySpotG5Extras, 'ApproximateAgeOfOldestMessage'))).toEqual({
        EvaluationQueue: 15 * 60,
        JobsQueue: 90 * 60,
      });
      expect(byMetric(t, 'ApproximateNumberOfMessagesVisible')).toHaveLength(2);
      for (const metric of ['Errors', 'Throttles']) {
        const fns = byMetric(t, metric).map((a) => JSON.stringify(a.Properties.Dimensions));
        expect(fns).toHaveLength(2);
        expect(fns.some((d) => d.includes('EvaluatorFunction'))).toBe(true);
        expect(fns.some((d) => d.includes('ValueApiFunction'))).toBe(true);
      }
    });

    it('reports trainers that exit non-zero or fail to start, and GPU instance launches that fail', () => {
      const patterns = Object.values(t.findResources('AWS::Events::Rule') as Resources).map(
        (r) =>
          r.Properties.EventPattern as { source: string[]; 'detail-type': string[]; detail: Record<string, unknown> },
      );
      const ecs = patterns.filter((p) => p.source[0] === 'aws.ecs');
      expect(ecs.map((p) => p['detail-type'])).toEqual([['ECS Task State Change'], ['ECS Task State Change']]);
      expect(ecs.map((p) => p.detail.lastStatus)).toEqual([['STOPPED'], ['STOPPED']]);
      expect(ecs.map((p) => p.detail.containers ?? p.detail.stopCode)).toEqual([
        { exitCode: [{ 'anything-but': 0 }] },
        ['TaskFailedToStart'],
      ]);
      for (const p of ecs) expect(JSON.stringify(p.detail.clusterArn)).toContain('TrainingCluster');
      const asg = patterns.find((p) => p.source[0] === 'aws.autoscaling');
      expect(asg?.['detail-type']).toEqual(['EC2 Instance Launch Unsuccessful']);
      expect(JSON.stringify(asg?.detail.AutoScalingGroupName)).toContain('TrainingInstances');
    });
  });

  describe('logs', () => {
    it('keeps every log group for the retention setting, and every function logs to its own group', () => {
      const groups = Object.values(t.findResources('AWS::Logs::LogGroup') as Resources);
      // Evaluator, value API, trainer, VPC flow logs, the force-delete custom resource.
      expect(groups).toHaveLength(5);
      for (const g of groups) expect(g.Properties.RetentionInDays).toBe(30);
      const functions = Object.values(t.findResources('AWS::Lambda::Function') as Resources);
      // Not the default-security-group handler: CDK's provider gives it no log group setting.
      for (const f of functions.filter((fn) => fn.Properties.Handler !== '__entrypoint__.handler')) {
        expect(f.Properties.LoggingConfig).toEqual({ LogGroup: { Ref: expect.stringMatching(/Logs/) } });
      }
    });
  });

  describe('IAM', () => {
    it("uses no managed policy but the basic execution role of CDK's own custom resource handlers", () => {
      const resources = t.toJSON().Resources as Record<string, Resource>;
      const handlerRoles = new Set(
        Object.entries(resources)
          .filter((e) => e[1].Type === 'AWS::Lambda::Function' && cdkProvided(e))
          .map(([, r]) => (r.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0]),
      );
      expect(handlerRoles.size).toBe(2);
      for (const [id, role] of Object.entries(resources).filter(([, r]) => r.Type === 'AWS::IAM::Role')) {
        const managed = JSON.stringify(role.Properties.ManagedPolicyArns ?? []);
        if (handlerRoles.has(id)) expect(managed).toMatch(/^\[\{"Fn::\w+":.*AWSLambdaBasicExecutionRole.*\]$/);
        else expect(role.Properties.ManagedPolicyArns, id).toBeUndefined();
      }
    });

    it('grants a "*" resource only for the actions AWS cannot scope', () => {
      const allowed = new Set([
        'ecr:GetAuthorizationToken',
        'ecs:DiscoverPollEndpoint',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'ecs:Poll',
        'ecs:StartTelemetrySession',
      ]);
      const starred = statementsOf(t, '').filter((s) => s.Resource === '*');
      expect(starred.length).toBeGreaterThan(0);
      for (const s of starred) {
        for (const a of actionsOf(s)) expect(allowed.has(a), a).toBe(true);
        // The agent's ecs:Poll is '*' with a condition naming this cluster.
        if (actionsOf(s).includes('ecs:Poll')) expect(JSON.stringify(s.Condition)).toContain('ecs:cluster');
      }
      const trainerStarred = statementsOf(t, 'TrainerTaskRole').filter((s) =>
        JSON.stringify(s.Resource).includes('"*"'),
      );
      expect(trainerStarred).toEqual([]);
    });

    it('scopes the evaluator to the evaluation keys: reads inputs, writes only results and claims', () => {
      expect(s3Grants(statementsOf(t, 'Evaluator'))).toEqual({
        '(bucket)': ['s3:ListBucket'],
        'jobs/*/predictions/*': ['s3:GetObject'],
        'jobs/*/splits/*': ['s3:GetObject'],
        'jobs/*/results/*': ['s3:DeleteObject', 's3:GetObject', 's3:PutObject'],
        'jobs/*/claims/*': ['s3:DeleteObject', 's3:GetObject', 's3:PutObject'],
      });
    });

    it("lets the value API read checkpoints and jobs and create only a fit job's own documents, never delete", () => {
      expect(s3Grants(statementsOf(t, 'ValueApi'))).toEqual({
        '(bucket)': ['s3:ListBucket'],
        'value-functions/*': ['s3:GetObject'],
        'jobs/*': ['s3:GetObject'],
        'value-functions/*/owner.json': ['s3:PutObject'],
        'jobs/*/job.json': ['s3:PutObject'],
        'jobs/*/owner.json': ['s3:PutObject'],
        'jobs/*/observations/*': ['s3:PutObject'],
        'jobs/*/inputs/*': ['s3:PutObject'],
        'jobs/*/started.json': ['s3:PutObject'],
        'jobs/*/cancel.json': ['s3:PutObject'],
      });
      // Every key the API's routes create matches a pattern; what trainers write matches none.
      const writable = (key: string) =>
        Object.entries(s3Grants(statementsOf(t, 'ValueApi'))).some(
          ([pattern, actions]) =>
            actions.includes('s3:PutObject') &&
            new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]+(/[^/]+)*')}$`).test(key),
        );
      const job = 'fit-1';
      for (const key of [
        valueFunctionOwnerKey('house-vf'),
        jobKeys(job).owner,
        jobKeys(job).spec,
        observationBatchKey(jobKeys(job).observationsPrefix, 1),
        jobKeys(job).labels,
        jobKeys(job).predictions('epoch-3'),
        jobKeys(job).started,
        jobKeys(job).cancel,
      ]) {
        expect(writable(key), key).toBe(true);
      }
      for (const key of [
        jobKeys(job).status,
        jobKeys(job).result,
        jobKeys(job).state(1),
        jobKeys(job).chunk(0),
        'value-functions/house-vf/v000001.json',
      ]) {
        expect(writable(key), key).toBe(false);
      }
      const sqs = statementsOf(t, 'ValueApi').filter((s) => actionsOf(s).some((a) => a.startsWith('sqs:')));
      expect(sqs.flatMap(actionsOf)).not.toContain('sqs:ReceiveMessage');
      expect(sqs.flatMap(actionsOf)).toContain('sqs:SendMessage');
    });

    it('lets the trainer work jobs and checkpoints, send metric queries and protect its own task, never read a DLQ', () => {
      const statements = statementsOf(t, 'TrainerTaskRole');
      expect(s3Grants(statements)).toEqual({
        '(bucket)': ['s3:ListBucket'],
        'jobs/*': ['s3:DeleteObject', 's3:GetObject', 's3:PutObject'],
        'value-functions/*': ['s3:GetObject', 's3:PutObject'],
      });
      const on = (queue: RegExp) =>
        statements
          .filter((s) => queue.test(JSON.stringify(s.Resource)))
          .flatMap(actionsOf)
          .filter((a) => a !== 'sqs:GetQueueUrl' && a !== 'sqs:GetQueueAttributes');
      expect(new Set(on(/"JobsQueue[0-9A-F]{8}"/))).toEqual(
        new Set(['sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:SendMessage']),
      );
      expect(new Set(on(/"EvaluationQueue[0-9A-F]{8}"/))).toEqual(new Set(['sqs:SendMessage']));
      expect(new Set(on(/EvaluationQueueDeadLetters/))).toEqual(new Set([]));
      expect(new Set(on(/JobsQueueDeadLetters/))).toEqual(new Set(['sqs:SendMessage']));
      const protection = statements.filter((st) => actionsOf(st).includes('ecs:UpdateTaskProtection'));
      expect(protection).toHaveLength(1);
      expect(JSON.stringify(protection[0]?.Resource)).toMatch(/:task\/".*TrainingCluster.*"\/\*"/);
    });
  });
});

describe('settings', () => {
  const synthWith = (settings: Record<string, unknown>) => () =>
    new MetricOptStack(new App(), 'Bad', { settings: settings as never });

  it.each([
    [{ gpuInstanceTypes: 'g5.xlarge,t3.large' }, 'gpuInstanceTypes must list 1 to 20 NVIDIA GPU instance types'],
    [{ gpuInstanceTypes: 'g5.xlarge,g5.12xlarge' }, 'gpuInstanceTypes must all have the same number of GPUs'],
    [{ maxReceiveCount: '3' }, 'maxReceiveCount must be an integer from 5 to 1000'],
    [{ evaluatorReservedConcurrency: '1' }, 'evaluatorReservedConcurrency must be an integer from 2 to 1000'],
    [{ valueApiAuth: 'cognito' }, "valueApiAuth must be 'iam' or 'api-key'"],
    [{ valueApiAuth: 'api-key' }, 'valueApiKeyHashes is required when valueApiAuth is api-key'],
    [{ valueApiKeyHashes: 'secret' }, 'valueApiKeyHashes must be SHA-256 hex digests'],
    [
      { trainerMinInstances: 3, trainerMaxInstances: 2 },
      'trainerMinInstances (3) must not exceed trainerMaxInstances (2)',
    ],
    [{ evaluatorBatchSize: '11' }, 'evaluatorBatchSize must be an integer from 1 to 10'],
    [{ trainerSpot: 'yes' }, 'trainerSpot must be true or false'],
    [{ logRetentionDays: 8 }, 'logRetentionDays must be one of 1, 3, 5, 7, 14, 30'],
    [
      { webhooks: '[{"name":"m","url":"https://x.example","direction":"maximize"}]' },
      'webhookSecretArn is required when webhooks lists any webhook',
    ],
    [{ webhooks: 'not json' }, 'webhooks: must be a JSON array'],
    [{ webhookSecretArn: 'my-secret' }, 'webhookSecretArn must be a Secrets Manager secret ARN'],
    [{ evaluatorModules: '../outside.mjs' }, "evaluatorModules: '../outside.mjs' must be a path inside the project"],
    [{ evaluatorModules: 'metrics/missing.mjs' }, "evaluatorModules: no such file 'metrics/missing.mjs'"],
  ])('%j fails synth with a message naming the setting', (settings, message) => {
    expect(synthWith(settings)).toThrow(message);
    expect(synthWith(settings)).toThrow(SettingsError);
  });

  it('chooses API-key auth when only key hashes are given, and refuses hashes with IAM auth', () => {
    expect(parseSettings({ valueApiKeyHashes: KEY_HASH }, process.cwd()).valueApiAuth).toBe('api-key');
    expect(parseSettings({}, process.cwd()).valueApiAuth).toBe('iam');
    expect(parseSettings({ valueApiKeyHashes: KEY_HASH.toUpperCase() }, process.cwd()).valueApiKeyHashes).toEqual([
      KEY_HASH,
    ]);
    expect(synthWith({ valueApiAuth: 'iam', valueApiKeyHashes: KEY_HASH })).toThrow(
      'valueApiKeyHashes is set but valueApiAuth is iam',
    );
  });

  it('builds in an App without cdk.json context (its feature flags)', () => {
    // No bundling and no staging copy: this checks construction only.
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [], 'aws:cdk:disable-asset-staging': true } });
    const stack = new MetricOptStack(app, 'Plain');
    expect(stack.store.bucket.node.tryGetContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy')).toBe(true);
  });

  it('reads the settings from the app context, as cdk.json and -c pass them', () => {
    const app = new App({
      context: { trainerSpot: 'true', trainerMaxInstances: '4', '@aws-cdk/core:someFlag': true },
    });
    const input = settingsFromContext((k) => app.node.tryGetContext(k));
    expect(input).toEqual({ trainerSpot: 'true', trainerMaxInstances: '4' });
    expect(parseSettings(input, process.cwd())).toMatchObject({ trainerSpot: true, trainerMaxInstances: 4 });
  });
});

describe('cdk.json', () => {
  it('sets every feature flag that the installed aws-cdk-lib recommends for new projects, to its value', () => {
    const read = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    const recommended = read(join('node_modules', 'aws-cdk-lib', 'recommended-feature-flags.json'));
    const context = (read('cdk.json') as { context: Record<string, unknown> }).context;
    expect(Object.keys(recommended).length).toBeGreaterThan(80);
    expect(context).toMatchObject(recommended);
    expect(context['@aws-cdk/aws-ec2:restrictDefaultSecurityGroup']).toBe(true);
  });
});
