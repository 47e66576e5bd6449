import { readFile } from 'node:fs/promises';
import { DataError } from '../data/errors.js';
import { parseRowContext, type RowContext } from '../data/row-context.js';
import { err, type Result } from '../util/result.js';

/**
 * Reads a context file (`--context FILE`: CSV with a header or JSON lines, keyed by row index)
 * for a data set of `datasetRows` rows; the checks and codes are parseRowContext's.
 */
export async function loadRowContext(path: string, datasetRows: number): Promise<Result<RowContext, DataError>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return err(new DataError('CONTEXT_NOT_FOUND', `context file ${path}: ${(e as Error).message}`));
  }
  return parseRowContext(text, datasetRows, `context file ${path}`);
}
