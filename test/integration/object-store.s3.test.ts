import { openObjectStore } from '../../shared/adapters/from-url.js';
import { describeObjectStoreContract } from '../core/object-store.contract.js';
import { createBucket, describeOnLocalStack, endpoint, uniqueName } from './localstack.js';

/** The object-store contract on S3 as LocalStack emulates it, wired as the deployed functions wire it. */
describeOnLocalStack('S3 on LocalStack', () => {
  describeObjectStoreContract('S3 (LocalStack)', async () =>
    openObjectStore(await createBucket(uniqueName('store')), { s3Endpoint: endpoint(), s3ForcePathStyle: true }),
  );
});
