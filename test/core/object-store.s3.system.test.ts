import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/object-store.s3.js';
import { motoAvailable, startMoto } from '../helpers/moto.js';
import { describeObjectStoreContract } from './object-store.contract.js';

if (!motoAvailable) console.warn('object-store contract: moto_server is not installed; the S3 adapter part is skipped');
let stopMoto: (() => void) | undefined;
afterAll(() => stopMoto?.());
describe.skipIf(!motoAvailable)('on moto', () => {
  describeObjectStoreContract('S3 (moto)', async () => {
    const moto = await startMoto();
    stopMoto = moto.stop;
    const client = new S3Client({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await client.send(new CreateBucketCommand({ Bucket: 'metricopt-test' }));
    return new S3ObjectStore({ bucket: 'metricopt-test', prefix: 'run-1', client });
  });
});
