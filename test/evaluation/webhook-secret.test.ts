import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvaluateMetricEnv } from '../../functions/evaluate-metric/config.js';
import { readSecretString } from '../../shared/adapters/secret.secrets-manager.js';
import { motoAvailable, startMoto } from '../helpers/moto.js';

/** The webhooks' HMAC key from Secrets Manager (METRICOPT_WEBHOOK_SECRET_ARN), as the deployed evaluator reads it. */
const base = {
  METRICOPT_STORE: 's3://bucket/prefix',
  METRICOPT_DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/dlq',
  METRICOPT_WEBHOOKS: JSON.stringify([{ name: 'scorer', url: 'https://scorer.example/score', direction: 'maximize' }]),
};

describe('webhook secret settings', () => {
  it('takes the key from the secret named by METRICOPT_WEBHOOK_SECRET_ARN, or the plain key locally, and names what is missing', () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:metricopt-webhook-AbCdEf';
    const fromArn = parseEvaluateMetricEnv(
      { ...base, METRICOPT_WEBHOOK_SECRET_ARN: arn },
      'key-read-from-the-secret-0123',
    );
    expect(fromArn.evaluators).toHaveLength(1);
    expect(() => parseEvaluateMetricEnv(base)).toThrow(
      /METRICOPT_WEBHOOK_SECRET_ARN \(or METRICOPT_WEBHOOK_SECRET\) is required when METRICOPT_WEBHOOKS lists any webhook/,
    );
    expect(() => parseEvaluateMetricEnv({ ...base, METRICOPT_WEBHOOK_SECRET_ARN: arn })).toThrow(
      /METRICOPT_WEBHOOK_SECRET_ARN is set but its secret was not read/,
    );
    expect(() => parseEvaluateMetricEnv({ ...base, METRICOPT_WEBHOOK_SECRET_ARN: 'not-an-arn' })).toThrow(
      /METRICOPT_WEBHOOK_SECRET_ARN must be a Secrets Manager secret ARN/,
    );
  });
});

if (!motoAvailable) console.warn('webhook-secret.test: moto_server is not installed; Secrets Manager read skipped');

describe.skipIf(!motoAvailable)('readSecretString on moto', () => {
  let stop: (() => void) | undefined;
  let endpoint = '';
  beforeAll(async () => {
    const moto = await startMoto();
    stop = moto.stop;
    endpoint = moto.endpoint;
  });
  afterAll(() => stop?.());

  it('reads the secret string by ARN, and fails with a message for a missing secret', async () => {
    const client = new SecretsManagerClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const created = await client.send(
      new CreateSecretCommand({ Name: 'metricopt-webhook', SecretString: 'hmac-key-of-sixteen-plus' }),
    );
    client.destroy();
    process.env.AWS_ACCESS_KEY_ID ??= 'test';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
    expect(await readSecretString(created.ARN as string, { endpoint, region: 'us-east-1' })).toBe(
      'hmac-key-of-sixteen-plus',
    );
    await expect(readSecretString('no-such-secret', { endpoint, region: 'us-east-1' })).rejects.toThrow();
  });
});
