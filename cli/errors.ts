import { DomainError } from '../shared/util/result.js';

/** A failure reported to the user as one line: `metricopt: error [CODE]: message`. */
export class CliError extends DomainError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'CliError';
  }
}

export function formatError(e: unknown): { line: string; expected: boolean } {
  if (e instanceof DomainError) return { line: `metricopt: error [${e.code}]: ${e.message}`, expected: true };
  const err = e as { code?: unknown; message?: unknown };
  if (typeof err?.code === 'string' && typeof err.message === 'string' && /^commander\./.test(err.code)) {
    return { line: `metricopt: error [USAGE]: ${err.message.replace(/^error: /, '')}`, expected: true };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { line: `metricopt: error [INTERNAL]: ${message.split('\n')[0]}`, expected: false };
}
