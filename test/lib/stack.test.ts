import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../functions/value-api/auth.js';
import { MetricOptStack } from '../../lib/metricopt-stack.js';

// Synthesis bundles the value API with esbuild (a dev dependency), as `cdk deploy` does.
describe('MetricOptStack', () => {
  let template: Template;
  beforeAll(() => {
    template = Template.fromStack(new MetricOptStack(new App(), 'Test'));
  });

  it('has an encrypted, private, TLS-only artifact bucket', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: Match.objectLike({}),
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
    });
    const policies = template.findResources('AWS::S3::BucketPolicy');
    expect(JSON.stringify(policies)).toContain('aws:SecureTransport');
  });

  it('serves the value API from a Lambda function URL with IAM auth, reading the bucket', () => {
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'AWS_IAM' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Environment: {
        Variables: Match.objectLike({
          METRICOPT_AUTH: 'iam',
          METRICOPT_STORE: { 'Fn::Join': ['', ['s3://', { Ref: Match.stringLikeRegexp('ArtifactsBucket') }]] },
        }),
      },
    });
    // Read-only access to the checkpoints: Get and List, no Put or Delete.
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('s3:GetObject*');
    expect(policies).toContain('s3:List*');
    expect(policies).toContain('value-functions/*');
    expect(policies).not.toContain('s3:PutObject');
    expect(policies).not.toContain('s3:DeleteObject');
  });

  it('switches to API keys checked by the app behind a public URL', () => {
    const hash = hashApiKey('a-key');
    const keyed = Template.fromStack(
      new MetricOptStack(new App(), 'Keyed', { valueApiAuth: { mode: 'api-key', keyHashes: [hash] } }),
    );
    keyed.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
    keyed.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ METRICOPT_AUTH: 'api-key', METRICOPT_API_KEY_HASHES: hash }) },
    });
  });

  it('refuses API-key auth without valid key hashes', () => {
    expect(
      () => new MetricOptStack(new App(), 'Bad', { valueApiAuth: { mode: 'api-key', keyHashes: ['secret'] } }),
    ).toThrow("ValueApi: api-key auth needs SHA-256 hex key hashes (64 hex characters), got 'secret'");
    expect(() => new MetricOptStack(new App(), 'None', { valueApiAuth: { mode: 'api-key', keyHashes: [] } })).toThrow(
      'ValueApi: api-key auth needs SHA-256 hex key hashes',
    );
  });
});
