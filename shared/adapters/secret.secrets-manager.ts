/**
 * Reads a secret's string value from AWS Secrets Manager (the webhook evaluators' HMAC key in the
 * deployed system: never a plain environment variable). The SDK is imported on first use.
 */
export async function readSecretString(
  secretId: string,
  options: { endpoint?: string | undefined; region?: string | undefined } = {},
): Promise<string> {
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const client = new SecretsManagerClient({
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
  });
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (typeof out.SecretString !== 'string' || out.SecretString === '') {
      throw new Error(`secret ${secretId} has no string value`);
    }
    return out.SecretString;
  } finally {
    client.destroy();
  }
}
