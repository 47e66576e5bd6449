import { join } from 'node:path';
import { CfnOutput, Duration } from 'aws-cdk-lib';
import { type Alias, Architecture, FunctionUrlAuthType, type IFunctionUrl, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { projectRoot } from '../project-root.js';
import { type ArtifactStore, STORE_PREFIXES } from './artifact-store.js';
import { ESM_BUNDLING } from './esm-bundling.js';
import { functionRole } from './function-role.js';
import type { WorkQueue } from './work-queue.js';

/**
 * Who may call the value API:
 * - `iam`: the function URL checks SigV4 signatures (AWS_IAM); grant callers both `lambda:InvokeFunctionUrl`
 *   and `lambda:InvokeFunction` on the `live` alias (`alias.grantInvokeUrl` and `alias.grantInvoke`):
 *   AWS checks both for a function URL with IAM auth. The app itself then checks nothing (METRICOPT_AUTH=iam).
 * - `api-key`: the function URL is public and the app checks `Authorization: Bearer` keys against
 *   these SHA-256 hex hashes (`npx metricopt serve --hash-key KEY` prints one).
 */
export type ValueApiAuth = { mode: 'iam' } | { mode: 'api-key'; keyHashes: readonly string[] };

/**
 * The keys the value API creates (each once, by a conditional create): a value function's owner
 * (`POST /v1/fit-jobs` claims a new id), a fit job's spec and owner, its observation batches and
 * prediction inputs, and its start and cancel markers (keys from shared/storage/layout.ts;
 * test/lib/stack.test.ts holds these patterns to those key functions).
 */
export const VALUE_API_WRITES = [
  `${STORE_PREFIXES.checkpoints}*/owner.json`,
  `${STORE_PREFIXES.jobs}*/job.json`,
  `${STORE_PREFIXES.jobs}*/owner.json`,
  `${STORE_PREFIXES.jobs}*/observations/*`,
  `${STORE_PREFIXES.jobs}*/inputs/*`,
  `${STORE_PREFIXES.jobs}*/started.json`,
  `${STORE_PREFIXES.jobs}*/cancel.json`,
] as const;

export interface ValueApiProps {
  store: ArtifactStore;
  /** The jobs queue: the API creates fit jobs (bring your own model) and sends them there. */
  jobs: WorkQueue;
  auth: ValueApiAuth;
  /** Lambda memory (also its CPU share); default 1024 MB. */
  memorySize?: number;
  /** Instances kept initialised (no cold start), billed while deployed; 0 = none. */
  provisionedConcurrency?: number;
  /** Most rows per predict/gradient batch (METRICOPT_MAX_ROWS); default the app's (1024). */
  maxRows?: number;
  logRetention?: RetentionDays;
}

/**
 * The value-function API (functions/value-api/lambda.ts: the Hono app through hono's Lambda
 * adapter) as a Lambda function behind a function URL on its `live` alias (which carries the
 * provisioned concurrency), reading checkpoints from the artifact bucket and creating jobs.
 * Bundled locally with esbuild (ESM, AWS SDK from the runtime), arm64.
 */
export class ValueApi extends Construct {
  readonly fn: NodejsFunction;
  readonly alias: Alias;
  readonly url: IFunctionUrl;

  constructor(scope: Construct, id: string, props: ValueApiProps) {
    super(scope, id);
    const root = projectRoot();
    const auth = props.auth;
    if (auth.mode === 'api-key') {
      const bad = auth.keyHashes.find((h) => !/^[0-9a-f]{64}$/.test(h));
      if (auth.keyHashes.length === 0 || bad !== undefined) {
        throw new Error(
          `ValueApi: api-key auth needs SHA-256 hex key hashes (64 hex characters)${bad === undefined ? '' : `, got '${bad}'`}`,
        );
      }
    }
    const logGroup = new LogGroup(this, 'Logs', { retention: props.logRetention ?? RetentionDays.ONE_MONTH });
    this.fn = new NodejsFunction(this, 'Function', {
      entry: join(root, 'functions/value-api/lambda.ts'),
      handler: 'handler',
      projectRoot: root,
      depsLockFilePath: join(root, 'package-lock.json'),
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 1024,
      timeout: Duration.seconds(10),
      logGroup,
      role: functionRole(this, 'Role', logGroup),
      environment: {
        METRICOPT_STORE: props.store.location,
        METRICOPT_AUTH: auth.mode,
        METRICOPT_JOBS_QUEUE: props.jobs.queue.queueUrl,
        METRICOPT_JOBS_DLQ: props.jobs.deadLetterQueue.queueUrl,
        ...(auth.mode === 'api-key' ? { METRICOPT_API_KEY_HASHES: auth.keyHashes.join(',') } : {}),
        ...(props.maxRows === undefined ? {} : { METRICOPT_MAX_ROWS: String(props.maxRows) }),
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: ESM_BUNDLING,
    });
    // Checkpoints and jobs: read. Writes only the documents a fit job's routes create (never a
    // status, result, state or checkpoint, never a delete).
    props.store.grantObjects(this.fn, ['s3:GetObject'], [`${STORE_PREFIXES.checkpoints}*`, `${STORE_PREFIXES.jobs}*`]);
    props.store.grantObjects(this.fn, ['s3:PutObject'], VALUE_API_WRITES);
    props.jobs.grantSend(this.fn);
    props.jobs.deadLetterQueue.grant(this.fn, 'sqs:GetQueueAttributes');

    const provisioned = props.provisionedConcurrency ?? 0;
    this.alias = this.fn.addAlias('live', provisioned > 0 ? { provisionedConcurrentExecutions: provisioned } : {});
    this.url = this.alias.addFunctionUrl({
      authType: auth.mode === 'iam' ? FunctionUrlAuthType.AWS_IAM : FunctionUrlAuthType.NONE,
    });
    new CfnOutput(this, 'Url', { value: this.url.url, description: 'Value API base URL' });
  }
}
