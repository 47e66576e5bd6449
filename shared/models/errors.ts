import { domainErrorClass } from '../util/result.js';

/** A model the run asked for that cannot be built on this data: a user mistake, not a bug. */
export type ModelErrorCode =
  /** `--film-layer` names no hidden layer of the backbone. */
  | 'FILM_LAYER_OUT_OF_RANGE'
  /** The ConvNet needs square single-channel images (features = side x side), e.g. digits (8 x 8). */
  | 'CONVNET_NEEDS_IMAGES'
  /** `--adapter low-rank` adds one input-to-logit term: binary tasks only. */
  | 'LOW_RANK_BINARY_ONLY'
  /** `--adapter context` reads the data set's context columns: it has none, or lacks one the backbone was built on. */
  | 'CONTEXT_ADAPTER_NO_CONTEXT';

export const ModelError = domainErrorClass<ModelErrorCode>('ModelError');
export type ModelError = InstanceType<typeof ModelError>;
