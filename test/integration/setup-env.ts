import { inject } from 'vitest';

/**
 * Per test file: the AWS SDK's standard environment pointed at the emulator, as a deployed
 * function's would point at AWS (clients that take no explicit endpoint find it here).
 */
const localstack = inject('localstack');
if (localstack.available) {
  process.env.AWS_ENDPOINT_URL = localstack.endpoint;
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
}
