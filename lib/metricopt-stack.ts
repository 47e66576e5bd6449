import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ArtifactStore } from './constructs/artifact-store.js';
import { ValueApi, type ValueApiAuth } from './constructs/value-api.js';

export interface MetricOptStackProps extends StackProps {
  /** How callers of the value API authenticate; default IAM on the function URL. */
  valueApiAuth?: ValueApiAuth;
}

/** Composes the constructs of the MetricOpt service and wires their grants. */
export class MetricOptStack extends Stack {
  readonly artifacts: ArtifactStore;
  readonly valueApi: ValueApi;

  constructor(scope: Construct, id: string, props: MetricOptStackProps = {}) {
    super(scope, id, props);
    this.artifacts = new ArtifactStore(this, 'Artifacts');
    new CfnOutput(this, 'ArtifactBucket', { value: this.artifacts.bucket.bucketName });
    this.valueApi = new ValueApi(this, 'ValueApi', {
      bucket: this.artifacts.bucket,
      auth: props.valueApiAuth ?? { mode: 'iam' },
    });
  }
}
