import { domainErrorClass } from '../util/result.js';

export type DataErrorCode =
  | 'DATASET_NOT_FOUND'
  | 'LIBSVM_MALFORMED'
  | 'LIBSVM_INDEX_OUT_OF_RANGE'
  | 'LIBSVM_VALUE_OUT_OF_RANGE'
  | 'LIBSVM_EMPTY'
  | 'LIBSVM_LABELS'
  | 'DATASET_TOO_SMALL'
  /** A context file (--context) that cannot be read. */
  | 'CONTEXT_NOT_FOUND'
  /** A context file (--context) that does not parse: no header, a line with the wrong field count, bad JSON. */
  | 'CONTEXT_MALFORMED'
  /** A context value that is not a finite number. */
  | 'CONTEXT_VALUE'
  /** A context column or row given twice. */
  | 'CONTEXT_DUPLICATE'
  /** A context row index that is not a row of the data set. */
  | 'CONTEXT_UNKNOWN_ROW'
  /** A row of the data set that the context file does not cover. */
  | 'CONTEXT_MISSING_ROW';

export const DataError = domainErrorClass<DataErrorCode>('DataError');
export type DataError = InstanceType<typeof DataError>;
