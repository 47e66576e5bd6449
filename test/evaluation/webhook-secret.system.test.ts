import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSecretString } from '../../shared/adapters/secret.secrets-manager.js';
import { motoAvailable, startMoto } from '../helpers/moto.js';

if (!motoAvailable)
  console.warn('webhook-secret.system.test: moto_server is not installed; Secrets Manager read skipped');

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
