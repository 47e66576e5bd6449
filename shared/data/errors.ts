import { DomainError } from '../util/result.js';

export type DataErrorCode =
  | 'DATASET_NOT_FOUND'
  | 'LIBSVM_MALFORMED'
  | 'LIBSVM_INDEX_OUT_OF_RANGE'
  | 'LIBSVM_VALUE_OUT_OF_RANGE'
  | 'LIBSVM_EMPTY'
  | 'LIBSVM_LABELS'
  | 'DATASET_TOO_SMALL';

export class DataError extends DomainError {
  constructor(code: DataErrorCode, message: string, details?: unknown) {
    super(code, message, details);
    this.name = 'DataError';
  }
}
