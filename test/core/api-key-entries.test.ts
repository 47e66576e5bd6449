import { describe, expect, it } from 'vitest';
import { parseApiKeyEntries } from '../../shared/schemas/value-api-config.js';

const hash = 'ab'.repeat(32);

describe('parseApiKeyEntries (the Lambda environment, metricopt serve, the CDK settings)', () => {
  it('trims and lower-cases the entries of a comma-separated string or a list, dropping empty ones', () => {
    expect(parseApiKeyEntries(` ${hash.toUpperCase()}:READ , ,${hash}`)).toEqual({
      entries: [`${hash}:read`, hash],
    });
    expect(parseApiKeyEntries([` ${hash}:write`, ''])).toEqual({ entries: [`${hash}:write`] });
    expect(parseApiKeyEntries('')).toEqual({ entries: [] });
  });

  it('names the first entry that is not a SHA-256 hex digest with an optional scope', () => {
    expect(parseApiKeyEntries(`${hash},secret,${hash}:admin`).invalid).toBe('secret');
    expect(parseApiKeyEntries([`${hash}:admin`]).invalid).toBe(`${hash}:admin`);
  });
});
