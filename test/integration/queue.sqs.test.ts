import { openQueue } from '../../shared/adapters/from-url.js';
import { describeQueueContract } from '../evaluation/queue.contract.js';
import { createQueuePair, describeOnLocalStack, endpoint, uniqueName } from './localstack.js';

/**
 * The queue contract on SQS as LocalStack emulates it: a real dead-letter queue behind a
 * RedrivePolicy (max receive count 2), visibility timeout 1 s.
 */
describeOnLocalStack('SQS on LocalStack', () => {
  describeQueueContract('SqsQueue (LocalStack)', async () => {
    const pair = await createQueuePair(uniqueName('evals'), { visibilityTimeoutS: 1, maxReceiveCount: 2 });
    const queue = await openQueue(pair.url, { deadLetterQueueUrl: pair.dlqUrl, sqsEndpoint: endpoint() });
    return { queue, visibilityTimeoutMs: 1000 };
  });
});
