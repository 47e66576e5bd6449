import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { describeObjectStoreContract } from './object-store.contract.js';

// The S3 adapter's run of the same suite, on moto: object-store.s3.system.test.ts.
describeObjectStoreContract('filesystem', async () => new FsObjectStore(await mkdtemp(join(tmpdir(), 'mo-store-'))));
