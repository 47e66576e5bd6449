import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CfnOutput, Duration } from 'aws-cdk-lib';
import { Architecture, FunctionUrlAuthType, type IFunctionUrl, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Bucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/**
 * Who may call the value API:
 * - `iam`: the function URL checks SigV4 signatures (AWS_IAM); grant callers `lambda:InvokeFunctionUrl`
 *   with `grantInvoke`. The app itself then checks nothing (METRICOPT_AUTH=iam).
 * - `api-key`: the function URL is public and the app checks `Authorization: Bearer` keys against
 *   these SHA-256 hex hashes (`npx metricopt serve --hash-key KEY` prints one).
 */
export type ValueApiAuth = { mode: 'iam' } | { mode: 'api-key'; keyHashes: readonly string[] };

export interface ValueApiProps {
  /** The artifact bucket holding `value-functions/<id>/vNNNNNN.json` checkpoints. */
  bucket: Bucket;
  auth: ValueApiAuth;
  /** Lambda memory (also its CPU share); default 1024 MB. */
  memorySize?: number;
  /** Most rows per predict/gradient batch (METRICOPT_MAX_ROWS); default the app's (1024). */
  maxRows?: number;
}

/**
 * The value-function API (functions/value-api/lambda.ts: the Hono app through hono's Lambda
 * adapter) as a Lambda function behind a function URL, reading checkpoints from the artifact
 * bucket. Bundled with esbuild (ESM, AWS SDK from the runtime), arm64.
 */
export class ValueApi extends Construct {
  readonly fn: NodejsFunction;
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
    this.fn = new NodejsFunction(this, 'Function', {
      entry: join(root, 'functions/value-api/lambda.ts'),
      handler: 'handler',
      projectRoot: root,
      depsLockFilePath: join(root, 'package-lock.json'),
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 1024,
      timeout: Duration.seconds(10),
      logGroup: new LogGroup(this, 'Logs', { retention: RetentionDays.ONE_MONTH }),
      environment: {
        METRICOPT_STORE: `s3://${props.bucket.bucketName}`,
        METRICOPT_AUTH: auth.mode,
        ...(auth.mode === 'api-key' ? { METRICOPT_API_KEY_HASHES: auth.keyHashes.join(',') } : {}),
        ...(props.maxRows === undefined ? {} : { METRICOPT_MAX_ROWS: String(props.maxRows) }),
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        sourceMap: true,
        // Some dependencies still call require(); give the ES module one.
        banner:
          "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
    });
    // Listing and reading checkpoints only: the API never writes.
    props.bucket.grantRead(this.fn, 'value-functions/*');
    this.url = this.fn.addFunctionUrl({
      authType: auth.mode === 'iam' ? FunctionUrlAuthType.AWS_IAM : FunctionUrlAuthType.NONE,
    });
    new CfnOutput(this, 'Url', { value: this.url.url, description: 'Value API base URL' });
  }
}

/** The folder with the project's package.json, from this file in lib/ or its build in dist/lib/. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package-lock.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('ValueApi: cannot find the project root (package-lock.json)');
    dir = parent;
  }
  return dir;
}
