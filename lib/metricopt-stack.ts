import { Aspects, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import { CheckovSuppressions } from './checkov-suppressions.js';
import type { Construct } from 'constructs';
import { Alerts } from './constructs/alerts.js';
import { ArtifactStore } from './constructs/artifact-store.js';
import { EvaluatorFunction, evaluatorFunctionTimeout } from './constructs/evaluator-function.js';
import { TrainingCluster } from './constructs/training-cluster.js';
import { ValueApi } from './constructs/value-api.js';
import { WorkQueue } from './constructs/work-queue.js';
import { projectRoot } from './project-root.js';
import { parseSettings, type Settings, type SettingsInput } from './settings.js';

export interface MetricOptStackProps extends StackProps {
  /** The deployment's settings (lib/settings.ts); every one has a default. */
  settings?: SettingsInput;
}

/**
 * The MetricOpt service: the artifact bucket, the evaluation queue and its evaluator function,
 * the value API, the jobs queue and the GPU training cluster. The stack composes the constructs
 * and wires what each may reach; the constructs carry their own secure defaults.
 */
export class MetricOptStack extends Stack {
  readonly settings: Settings;
  readonly store: ArtifactStore;
  readonly evaluation: WorkQueue;
  readonly jobs: WorkQueue;
  readonly evaluator: EvaluatorFunction;
  readonly valueApi: ValueApi;
  readonly training: TrainingCluster;
  readonly alerts: Alerts;

  constructor(scope: Construct, id: string, props: MetricOptStackProps = {}) {
    super(scope, id, props);
    const s = parseSettings(props.settings ?? {}, projectRoot());
    this.settings = s;
    this.store = new ArtifactStore(this, 'Artifacts', {
      jobDataExpirationDays: s.jobDataExpirationDays,
      checkpointNoncurrentDays: s.checkpointNoncurrentDays,
    });

    this.alerts = new Alerts(this, 'Alerts', { topicArn: s.alarmTopicArn });
    const alerts = this.alerts;

    const evaluatorTimeout = Duration.seconds(s.evaluatorTimeoutSeconds);
    this.evaluation = new WorkQueue(this, 'EvaluationQueue', {
      purpose: 'evaluation',
      // AWS's advice for a Lambda event source: six times the function's timeout.
      visibilityTimeout: Duration.seconds(6 * evaluatorFunctionTimeout(evaluatorTimeout).toSeconds()),
      maxReceiveCount: s.maxReceiveCount,
      // A metric query takes seconds: one waiting this long means no evaluator is running.
      maxAge: Duration.minutes(15),
      alerts,
    });
    this.jobs = new WorkQueue(this, 'JobsQueue', {
      purpose: 'training jobs',
      // The trainer's lease (METRICOPT_JOBS_VISIBILITY_S): extended every 5 minutes while it works.
      visibilityTimeout: Duration.minutes(15),
      maxReceiveCount: s.maxReceiveCount,
      maxAge: Duration.minutes(s.jobsAgeAlarmMinutes),
      alerts,
    });

    this.evaluator = new EvaluatorFunction(this, 'Evaluator', {
      store: this.store,
      evaluation: this.evaluation,
      maxReceiveCount: s.maxReceiveCount,
      batchSize: s.evaluatorBatchSize,
      reservedConcurrency: s.evaluatorReservedConcurrency,
      memorySize: s.evaluatorMemoryMb,
      evaluatorTimeout,
      modules: s.evaluatorModules,
      webhooks: s.webhooks,
      webhookSecretArn: s.webhookSecretArn,
      logRetention: s.logRetentionDays,
    });

    this.valueApi = new ValueApi(this, 'ValueApi', {
      store: this.store,
      jobs: this.jobs,
      auth: s.valueApiAuth === 'iam' ? { mode: 'iam' } : { mode: 'api-key', keyHashes: s.valueApiKeyHashes },
      memorySize: s.valueApiMemoryMb,
      provisionedConcurrency: s.valueApiProvisionedConcurrency,
      logRetention: s.logRetentionDays,
    });

    this.training = new TrainingCluster(this, 'Training', {
      store: this.store,
      jobs: this.jobs,
      evaluation: this.evaluation,
      instanceTypes: s.gpuInstanceTypes,
      minInstances: s.trainerMinInstances,
      maxInstances: s.trainerMaxInstances,
      spot: s.trainerSpot,
      taskCpu: s.trainerCpu,
      taskMemoryMiB: s.trainerMemoryMiB,
      volumeGiB: s.trainerVolumeGiB,
      logRetention: s.logRetentionDays,
      alerts,
    });
    alerts.lambda('Evaluator', this.evaluator.fn, 'evaluator');
    alerts.lambda('ValueApi', this.valueApi.fn, 'value API');

    // Each check the stack fails on purpose, with its reason, in the template (test/lib/template-lint.e2e.test.ts).
    Aspects.of(this).add(new CheckovSuppressions());

    new CfnOutput(this, 'ArtifactBucket', { value: this.store.bucket.bucketName });
    new CfnOutput(this, 'EvaluationQueueUrl', { value: this.evaluation.queue.queueUrl });
    new CfnOutput(this, 'EvaluationDeadLetterQueueUrl', { value: this.evaluation.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'JobsQueueUrl', { value: this.jobs.queue.queueUrl });
    new CfnOutput(this, 'JobsDeadLetterQueueUrl', { value: this.jobs.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'TrainingClusterArn', { value: this.training.cluster.clusterArn });
    new CfnOutput(this, 'TrainerTaskDefinitionArn', { value: this.training.taskDefinition.taskDefinitionArn });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alerts.topic.topicArn });
  }
}
