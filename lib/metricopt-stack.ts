import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ArtifactStore } from './constructs/artifact-store.js';

/** Composes the constructs of the MetricOpt service and wires their grants. */
export class MetricOptStack extends Stack {
  readonly artifacts: ArtifactStore;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.artifacts = new ArtifactStore(this, 'Artifacts');
    new CfnOutput(this, 'ArtifactBucket', { value: this.artifacts.bucket.bucketName });
  }
}
