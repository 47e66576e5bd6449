import type { LogFields, Logger } from '../ports/logger.port.js';

export interface JsonLinesLoggerOptions {
  /** Fields on every line (after time, level and event; a line's own fields win). */
  base?: LogFields;
  /** Without a clock the lines carry no `time` (a terminal, a log service that stamps lines). */
  clock?: () => Date;
}

/**
 * The logger port as JSON lines, one object per event:
 * `{"time":"2026-12-07T21:00:00.000Z","level":"info","event":"done",...fields}`.
 */
export function jsonLinesLogger(write: (line: string) => void, options: JsonLinesLoggerOptions = {}): Logger {
  const { base = {}, clock } = options;
  const line =
    (level: 'info' | 'warn' | 'error') =>
    (event: string, fields: LogFields = {}) =>
      write(
        `${JSON.stringify({ ...(clock ? { time: clock().toISOString() } : {}), level, event, ...base, ...fields })}\n`,
      );
  return { info: line('info'), warn: line('warn'), error: line('error') };
}
