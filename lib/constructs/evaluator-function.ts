import { basename, extname, join } from 'node:path';
import { Duration } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { WebhookEntry } from '../../shared/schemas/evaluation.js';
import { STORE_PREFIXES } from '../../shared/storage/layout.js';
import { projectRoot } from '../project-root.js';
import type { ArtifactStore } from './artifact-store.js';
import { ESM_BUNDLING } from './esm-bundling.js';
import { functionRole } from './function-role.js';
import type { WorkQueue } from './work-queue.js';

/** Calls of one evaluator per delivery (shared/metrics/retry-policy.ts: a throw or a timeout is tried again, 3 calls in all). */
const EVALUATOR_ATTEMPTS = 3;

export interface EvaluatorFunctionProps {
  store: ArtifactStore;
  /** The evaluation queue this function consumes; its DLQ receives poison messages. */
  evaluation: WorkQueue;
  /** The queue's redrive maxReceiveCount (METRICOPT_MAX_RECEIVE_COUNT). */
  maxReceiveCount: number;
  batchSize: number;
  reservedConcurrency: number;
  memorySize: number;
  /** Limit on one evaluator call (METRICOPT_EVALUATOR_TIMEOUT_MS). */
  evaluatorTimeout: Duration;
  /** User evaluator modules, relative to the project root, bundled beside the handler. */
  modules: readonly string[];
  webhooks: readonly WebhookEntry[];
  /** Secrets Manager ARN of the webhooks' HMAC key (required when there are webhooks). */
  webhookSecretArn?: string | undefined;
  logRetention: RetentionDays;
}

/** The Lambda function's timeout for an evaluator timeout: every attempt of a record may run out, plus I/O. */
export function evaluatorFunctionTimeout(evaluatorTimeout: Duration): Duration {
  return Duration.seconds(EVALUATOR_ATTEMPTS * evaluatorTimeout.toSeconds() + 30);
}

/**
 * The evaluator worker (functions/evaluate-metric/lambda.ts) on Lambda, fed by the evaluation
 * queue with ReportBatchItemFailures: a failed record is redelivered, its batch-mates are not.
 * Each user evaluator module is bundled by esbuild into `evaluators/<n>-<name>.mjs` of the
 * function's code and listed in METRICOPT_EVALUATOR_MODULES.
 */
export class EvaluatorFunction extends Construct {
  readonly fn: NodejsFunction;

  constructor(scope: Construct, id: string, props: EvaluatorFunctionProps) {
    super(scope, id);
    const root = projectRoot();
    const logGroup = new LogGroup(this, 'Logs', { retention: props.logRetention });
    const bundled = props.modules.map((path, i) => ({
      source: path,
      target: `evaluators/${i + 1}-${basename(path, extname(path))}.mjs`,
    }));
    const webhookSecretArn = props.webhooks.length > 0 ? props.webhookSecretArn : undefined;
    if (props.webhooks.length > 0 && webhookSecretArn === undefined) {
      throw new Error('EvaluatorFunction: webhooks need webhookSecretArn (the HMAC key in Secrets Manager)');
    }
    this.fn = new NodejsFunction(this, 'Function', {
      entry: join(root, 'functions/evaluate-metric/lambda.ts'),
      handler: 'handler',
      projectRoot: root,
      depsLockFilePath: join(root, 'package-lock.json'),
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: evaluatorFunctionTimeout(props.evaluatorTimeout),
      reservedConcurrentExecutions: props.reservedConcurrency,
      logGroup,
      role: functionRole(this, 'Role', logGroup),
      environment: {
        METRICOPT_STORE: props.store.location,
        METRICOPT_DLQ_URL: props.evaluation.deadLetterQueue.queueUrl,
        METRICOPT_MAX_RECEIVE_COUNT: String(props.maxReceiveCount),
        METRICOPT_EVALUATOR_TIMEOUT_MS: String(props.evaluatorTimeout.toMilliseconds()),
        ...(bundled.length > 0
          ? { METRICOPT_EVALUATOR_MODULES: bundled.map((m) => `/var/task/${m.target}`).join(',') }
          : {}),
        ...(props.webhooks.length > 0 ? { METRICOPT_WEBHOOKS: JSON.stringify(props.webhooks) } : {}),
        // The secret's ARN, never its value: the handler reads the key from Secrets Manager.
        ...(webhookSecretArn === undefined ? {} : { METRICOPT_WEBHOOK_SECRET_ARN: webhookSecretArn }),
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        ...ESM_BUNDLING,
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir, outputDir) =>
            bundled.map(
              (m) =>
                `"${inputDir}/node_modules/.bin/esbuild" "${inputDir}/${m.source}" --bundle --platform=node --format=esm --target=node24 --outfile="${outputDir}/${m.target}" --banner:js="${ESM_BUNDLING.banner}" --log-level=warning`,
            ),
        },
      },
    });
    // Reads the query's predictions and labels; writes its result and a short-lived claim.
    const jobs = `${STORE_PREFIXES.jobs}*`;
    props.store.grantObjects(this.fn, ['s3:GetObject'], [`${jobs}/predictions/*`, `${jobs}/splits/*`]);
    props.store.grantObjects(
      this.fn,
      ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
      [`${jobs}/results/*`, `${jobs}/claims/*`],
    );
    props.evaluation.deadLetterQueue.grantSendMessages(this.fn);
    if (webhookSecretArn !== undefined) {
      this.fn.addToRolePolicy(
        new PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [webhookSecretArn] }),
      );
    }
    this.fn.addEventSource(
      new SqsEventSource(props.evaluation.queue, {
        batchSize: props.batchSize,
        reportBatchItemFailures: true,
        // The poller never runs more invocations than the function may: no throttled batches,
        // which would count receives against valid messages and dead-letter them.
        maxConcurrency: props.reservedConcurrency,
      }),
    );
  }
}
