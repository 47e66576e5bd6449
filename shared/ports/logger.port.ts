/** The fields of one log line. */
export type LogFields = Record<string, unknown>;

/**
 * Structured logs: an event name and its fields, at a level. Entry points choose the adapter:
 * JSON lines (shared/adapters/logger.json-lines.ts: the trainer container, the CLI's worker
 * output) or, in a Lambda, Powertools' Logger, which is this port as it is.
 */
export interface Logger {
  // Overloads rather than an optional `fields`: Powertools' methods take rest arguments.
  info(event: string): void;
  info(event: string, fields: LogFields): void;
  warn(event: string): void;
  warn(event: string, fields: LogFields): void;
  error(event: string): void;
  error(event: string, fields: LogFields): void;
}

export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
};
