import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { describe, expect, it, vi } from 'vitest';
import { jsonLinesLogger } from '../../shared/adapters/logger.json-lines.js';
import type { Logger } from '../../shared/ports/logger.port.js';

describe('jsonLinesLogger', () => {
  it('writes one JSON object per event: time, level, event, the base fields, then its own', () => {
    const lines: string[] = [];
    const log = jsonLinesLogger((l) => lines.push(l), {
      base: { worker: 7 },
      clock: () => new Date('2026-12-07T21:00:00.000Z'),
    });
    log.info('done', { jobId: 'j', resumed: true });
    log.warn('stopping', { signal: 'SIGTERM' });
    log.error('failed', { code: 'JOB_SPEC_INVALID', worker: 8 });
    expect(lines).toEqual([
      '{"time":"2026-12-07T21:00:00.000Z","level":"info","event":"done","worker":7,"jobId":"j","resumed":true}\n',
      '{"time":"2026-12-07T21:00:00.000Z","level":"warn","event":"stopping","worker":7,"signal":"SIGTERM"}\n',
      '{"time":"2026-12-07T21:00:00.000Z","level":"error","event":"failed","worker":8,"code":"JOB_SPEC_INVALID"}\n',
    ]);
  });

  it('leaves the time out without a clock', () => {
    const lines: string[] = [];
    jsonLinesLogger((l) => lines.push(l)).info('chunk-done');
    expect(JSON.parse(lines[0] as string)).toEqual({ level: 'info', event: 'chunk-done' });
  });
});

describe('Powertools Logger as the logger port (the Lambdas)', () => {
  it('takes an event and its fields as one structured line', () => {
    const port: Logger = new PowertoolsLogger({ serviceName: 'metricopt-test' });
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      port.warn('evaluator-failed', { key: 'jobs/j/results/1.json', code: 'EVALUATOR_TIMEOUT' });
    } finally {
      vi.restoreAllMocks();
    }
    const written = [...out.mock.calls, ...err.mock.calls].map((c) => String(c[0])).join('');
    expect(JSON.parse(written.trim())).toMatchObject({
      level: 'WARN',
      message: 'evaluator-failed',
      key: 'jobs/j/results/1.json',
      code: 'EVALUATOR_TIMEOUT',
    });
  });
});
