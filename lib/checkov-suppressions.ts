import { CfnResource, type IAspect } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** A checkov check this stack fails on purpose, where, and why (written into the template's metadata). */
interface Suppression {
  id: string;
  /** The CloudFormation type it applies to, and optionally a test of the resource's construct path. */
  type: string;
  where?: (path: string, resource: CfnResource) => boolean;
  comment: string;
}

const SUPPRESSIONS: Suppression[] = [
  {
    id: 'CKV_AWS_27',
    type: 'AWS::SQS::Queue',
    comment:
      'Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); the check only recognises a KMS key, which would add a key and KMS calls per message for no stronger guarantee here.',
  },
  {
    id: 'CKV_AWS_158',
    type: 'AWS::Logs::LogGroup',
    comment:
      'CloudWatch Logs encrypts every log group at rest; these logs carry no secrets (keys are never logged), so a customer managed key would only add cost.',
  },
  {
    id: 'CKV_AWS_117',
    type: 'AWS::Lambda::Function',
    comment:
      "The functions reach only AWS APIs (S3, SQS and Secrets Manager; EC2 and Auto Scaling for CDK's custom resource handlers) over TLS with IAM; no resource of this stack is private to a VPC, and a VPC would need a NAT gateway or interface endpoints.",
  },
  {
    id: 'CKV_AWS_116',
    type: 'AWS::Lambda::Function',
    comment:
      'A Lambda DLQ applies to asynchronous invocations only: the evaluator is fed by an SQS event source (the queue redrives to its own DLQ), the value API is invoked synchronously through its URL, and custom resource handlers answer CloudFormation directly.',
  },
  {
    id: 'CKV_AWS_173',
    type: 'AWS::Lambda::Function',
    comment:
      'The environment holds locations, limits and SHA-256 hashes of API keys, never a secret (the webhook key is read from Secrets Manager); Lambda encrypts it at rest with its AWS managed key.',
  },
  {
    id: 'CKV_AWS_115',
    type: 'AWS::Lambda::Function',
    where: (path) => path.includes('/ValueApi/'),
    comment:
      'The value API is not capped on purpose (interactive callers); its throttles raise an alarm. The evaluator function has reserved concurrency.',
  },
  {
    id: 'CKV_AWS_115',
    type: 'AWS::Lambda::Function',
    where: (path) =>
      path.includes('/Custom::VpcRestrictDefaultSGCustomResourceProvider/') ||
      path.includes('/AWS679f53fac002430cb0da5b7982bd2287/'),
    comment:
      "CDK's own custom resource handlers (the default security group's rules removed on create, the GPU instance group force-deleted on destroy): CloudFormation invokes each once per stack operation.",
  },
  {
    id: 'CKV_AWS_258',
    type: 'AWS::Lambda::Url',
    where: (_path, r) => (r as unknown as { authType?: string }).authType === 'NONE',
    comment:
      "valueApiAuth=api-key: the URL is public and the app checks 'Authorization: Bearer' against SHA-256 hashes of the accepted keys (functions/value-api/auth.ts); the default is IAM auth.",
  },
  {
    id: 'CKV_AWS_18',
    type: 'AWS::S3::Bucket',
    where: (path) => path.includes('/AccessLogs/'),
    comment: 'This is the access-log bucket of the artifact bucket: logging it would log its own log deliveries.',
  },
  {
    id: 'CKV_AWS_21',
    type: 'AWS::S3::Bucket',
    where: (path) => path.includes('/AccessLogs/'),
    comment: 'The access-log bucket: S3 log delivery writes each object once; versions would only keep copies of logs.',
  },
  {
    id: 'CKV_AWS_88',
    type: 'AWS::EC2::LaunchTemplate',
    comment:
      'GPU instances sit in public subnets with a public address for outbound calls and a security group with no inbound rule: no NAT gateway to pay for (README "Costs").',
  },
  {
    id: 'CKV_AWS_111',
    type: 'AWS::IAM::Policy',
    where: (path) => path.includes('/InstanceRole/'),
    comment:
      'The ECS container agent policy CDK attaches to the instance role: logs and ecr:GetAuthorizationToken support no resource scoping; the ECS actions are scoped to this cluster.',
  },
];

/**
 * Writes each deliberate checkov failure into the resource's template metadata
 * (`Metadata.checkov.skip`, with its reason), so checkov on the synthesized template reports
 * zero failures and every exception is reviewable beside its cause.
 */
export class CheckovSuppressions implements IAspect {
  visit(node: IConstruct): void {
    if (!(node instanceof CfnResource)) return;
    const skip = SUPPRESSIONS.filter(
      (s) => s.type === node.cfnResourceType && (s.where === undefined || s.where(`/${node.node.path}/`, node)),
    ).map((s) => ({ id: s.id, comment: s.comment }));
    if (skip.length > 0) node.addMetadata('checkov', { skip });
  }
}
