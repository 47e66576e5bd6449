import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type CfnBucket,
  type IBucket,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { STORE_PREFIXES } from '../../shared/storage/layout.js';

/**
 * The key prefixes of the store (`value-functions/`: checkpoints, the product, kept; `jobs/`: job
 * specs, state, trajectories, status, uploads and the evaluation queue's documents, expiring),
 * from the one module that owns the storage layout.
 */
export { STORE_PREFIXES };

export interface ArtifactStoreProps {
  /** Days after which everything under `jobs/` (scratch data, evaluation inputs and results) expires. */
  jobDataExpirationDays: number;
  /** Days a replaced checkpoint version is kept before it expires. */
  checkpointNoncurrentDays: number;
}

/**
 * The object store of the cloud deployment. Encrypted, TLS-only, private, versioned (checkpoints
 * are the product), with its server access logs in a second bucket. Job data, which includes the
 * evaluation queue's inputs and results (`jobs/<id>/predictions|splits|results|claims/`), expires;
 * old checkpoint versions expire after a while; the current ones are kept.
 */
export class ArtifactStore extends Construct {
  readonly bucket: Bucket;
  readonly accessLogs: Bucket;

  constructor(scope: Construct, id: string, props: ArtifactStoreProps) {
    super(scope, id);
    // Access logs are delivered under a bucket policy, not the legacy log-delivery ACL (which
    // BUCKET_OWNER_ENFORCED forbids), whether or not the app's cdk.json sets this flag.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    this.accessLogs = new Bucket(this, 'AccessLogs', {
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ expiration: Duration.days(365) }],
    });
    Validations.of(this.accessLogs).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the server access log bucket itself; logging its own access would loop.',
    });
    this.bucket = new Bucket(this, 'Bucket', {
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      // aws-cdk-lib's classes do not satisfy their own interfaces under exactOptionalPropertyTypes.
      serverAccessLogsBucket: this.accessLogs as unknown as IBucket,
      serverAccessLogsPrefix: 'artifacts/',
      lifecycleRules: [
        { id: 'incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
        {
          id: 'job-data',
          prefix: STORE_PREFIXES.jobs,
          expiration: Duration.days(props.jobDataExpirationDays),
          noncurrentVersionExpiration: Duration.days(1),
        },
        {
          id: 'old-checkpoint-versions',
          prefix: STORE_PREFIXES.checkpoints,
          noncurrentVersionExpiration: Duration.days(props.checkpointNoncurrentDays),
        },
      ],
    });
  }

  /** `s3://<bucket>/`, the METRICOPT_STORE of every part. */
  get location(): string {
    return `s3://${this.bucket.bucketName}/`;
  }

  /**
   * Lets `grantee` run exactly `actions` on the objects under the key patterns (relative to the
   * bucket, e.g. `jobs/*`), plus `s3:ListBucket` on the bucket: the S3 adapter lists keys, and
   * without ListBucket a missing key answers 403 instead of 404. Each key pattern is a prefix
   * wildcard (object keys are per job, checkpoint and query), acknowledged to cdk-nag as such.
   */
  grantObjects(grantee: IGrantable, actions: readonly ObjectAction[], patterns: readonly string[]): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: [...actions],
        resources: patterns.map((p) => this.bucket.arnForObjects(p)),
      }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }),
    );
    const bucketId = Stack.of(this).getLogicalId(this.bucket.node.defaultChild as CfnBucket);
    for (const pattern of patterns) {
      Validations.of(grantee.grantPrincipal as unknown as Construct).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${pattern}]`,
        reason: `Object keys under ${pattern.replace(/\*$/, '')} are created per job, checkpoint or query at run time; a prefix wildcard with the listed actions (${actions.join(', ')}) is the narrowest grant S3 allows.`,
      });
    }
  }
}

/** The object actions the S3 object-store adapter uses (a conditional create is a PutObject). */
export type ObjectAction = 's3:GetObject' | 's3:PutObject' | 's3:DeleteObject';
