import { domainErrorClass } from '../../util/result.js';

/** Expected failures of the meta-training and meta-test use-cases (reported as `[CODE]`, exit 1). */
export type UseCaseErrorCode =
  /** Fewer than two tasks got two or more metric observations: nothing to train a value function on. */
  | 'META_TRAIN_NO_DATA'
  /** Every validation query of a meta-test choice failed: there is nothing to choose from. */
  | 'META_TEST_NO_OBSERVATION'
  /** The label-noise cell flips the labels of one group: the data set has no `group` column. */
  | 'LABEL_NOISE_NEEDS_GROUP'
  /** The metric reads embeddings (outputs: 'embedding') and the model has no embedding head. */
  | 'MODEL_HAS_NO_EMBEDDINGS';

export const UseCaseError = domainErrorClass<UseCaseErrorCode>('UseCaseError');
export type UseCaseError = InstanceType<typeof UseCaseError>;
