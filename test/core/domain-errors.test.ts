import { describe, expect, it } from 'vitest';
import { DataError } from '../../shared/data/errors.js';
import { issueLine } from '../../shared/schemas/zod-issue.js';
import { JobError } from '../../shared/storage/job-errors.js';
import { ObservationError } from '../../shared/use-cases/byom/observation-batches.js';
import { DomainError, domainErrorClass } from '../../shared/util/result.js';
import { z } from 'zod';

describe('domainErrorClass', () => {
  it('builds errors with their module name, code and details that are DomainErrors', () => {
    const e = new DataError('LIBSVM_MALFORMED', 'line 3: bad', { line: 3 });
    expect(e).toBeInstanceOf(DataError);
    expect(e).toBeInstanceOf(DomainError);
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({
      name: 'DataError',
      code: 'LIBSVM_MALFORMED',
      message: 'line 3: bad',
      details: { line: 3 },
    });
    expect(e).not.toBeInstanceOf(ObservationError);
  });

  it('marks only the listed codes retryable', () => {
    expect(new JobError('JOB_STATE_CONFLICT', 'another trainer').retryable).toBe(true);
    expect(new JobError('JOB_CANCELLED', 'cancelled').retryable).toBe(true);
    for (const code of ['JOB_SPEC_INVALID', 'JOB_SPEC_MISMATCH', 'JOB_NOT_FOUND', 'JOB_STATE_INVALID'] as const) {
      expect(new JobError(code, 'x').retryable).toBe(false);
    }
    const Flaky = domainErrorClass<'A' | 'B'>('FlakyError', ['B']);
    expect([new Flaky('A', 'a').retryable, new Flaky('B', 'b').retryable]).toEqual([false, true]);
  });
});

describe('issueLine', () => {
  const schema = z.object({ a: z.object({ b: z.number() }) });
  it('names the path of the first issue', () => {
    const r = schema.safeParse({ a: { b: 'x' } });
    expect(!r.success && issueLine(r.error)).toMatch(/^a\.b: /);
  });
  it('names the root as asked when the whole value is wrong', () => {
    const r = schema.safeParse(3);
    expect(!r.success && issueLine(r.error, '(root)')).toMatch(/^\(root\): /);
    expect(!r.success && issueLine(r.error)).not.toMatch(/^\(root\)/);
  });
});
