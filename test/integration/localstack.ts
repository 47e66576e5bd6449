import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { describe, inject } from 'vitest';

/** The emulator the global setup started (or found); see global-setup.ts. */
export const localstack = inject('localstack');

/** The emulator's endpoint; only called inside `describeOnLocalStack`. */
export function endpoint(): string {
  if (!localstack.available) throw new Error(`no emulator: ${localstack.reason}`);
  return localstack.endpoint;
}

/** A describe block that runs on the emulator, skipped (and reported by the global setup) without one. */
export function describeOnLocalStack(name: string, body: () => void): void {
  describe.skipIf(!localstack.available)(name, body);
}

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
let s3: S3Client | undefined;
let sqs: SQSClient | undefined;

/** A unique name for this file's resources (lowercase, as bucket names must be). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Creates a bucket; returns its s3:// URL with `prefix`. */
export async function createBucket(name: string, prefix = 'metricopt'): Promise<string> {
  s3 ??= new S3Client({ endpoint: endpoint(), region: 'us-east-1', forcePathStyle: true, credentials });
  await s3.send(new CreateBucketCommand({ Bucket: name }));
  return `s3://${name}/${prefix}`;
}

export interface QueuePair {
  url: string;
  arn: string;
  dlqUrl: string;
  dlqName: string;
}

/** A queue with its own dead-letter queue, created the way the CDK app does: RedrivePolicy on the queue. */
export async function createQueuePair(
  name: string,
  settings: { visibilityTimeoutS: number; maxReceiveCount: number },
): Promise<QueuePair> {
  sqs ??= new SQSClient({ endpoint: endpoint(), region: 'us-east-1', credentials });
  const arnOf = async (url: string | undefined) =>
    (await sqs!.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))).Attributes
      ?.QueueArn as string;
  const dlqName = `${name}-dlq`;
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: dlqName }));
  const main = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(settings.visibilityTimeoutS),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: await arnOf(dlq.QueueUrl),
          maxReceiveCount: settings.maxReceiveCount,
        }),
      },
    }),
  );
  return { url: main.QueueUrl as string, arn: await arnOf(main.QueueUrl), dlqUrl: dlq.QueueUrl as string, dlqName };
}
