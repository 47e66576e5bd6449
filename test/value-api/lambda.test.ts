import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseValueApiEnv } from '../../functions/value-api/config.js';
import { tempStore, urlEvent } from './fixtures.js';

let fixture: Awaited<ReturnType<typeof tempStore>>;

beforeAll(async () => {
  fixture = await tempStore([{ id: 'lambda-vf', d: 16 }]);
});

afterAll(async () => {
  await fixture.cleanup();
});

describe('value API Lambda handler', () => {
  it('answers a function URL event with IAM auth from the same app', async () => {
    process.env.METRICOPT_STORE = fixture.dir;
    process.env.METRICOPT_AUTH = 'iam';
    const { handler } = await import('../../functions/value-api/lambda.js');
    const phi = new Array(16).fill(0.25);
    const ok = (await handler(
      urlEvent('/v1/value-functions/lambda-vf/predict', { phi }, true) as never,
      {} as never,
    )) as {
      statusCode: number;
      body: string;
    };
    expect(ok.statusCode).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ id: 'lambda-vf', version: 1, values: [expect.any(Number)] });
    const denied = (await handler(
      urlEvent('/v1/value-functions/lambda-vf/predict', { phi }, false) as never,
      {} as never,
    )) as {
      statusCode: number;
      body: string;
    };
    expect(denied.statusCode).toBe(401);
    expect(JSON.parse(denied.body).error.code).toBe('UNAUTHORIZED');
  });
});

describe('parseValueApiEnv', () => {
  it('requires METRICOPT_STORE', () => {
    expect(() => parseValueApiEnv({})).toThrow('value-api config: METRICOPT_STORE is required');
  });

  it('requires key hashes in api-key mode and validates them', () => {
    expect(() => parseValueApiEnv({ METRICOPT_STORE: 's3://b/p' })).toThrow(/METRICOPT_API_KEY_HASHES is required/);
    expect(() => parseValueApiEnv({ METRICOPT_STORE: 's3://b/p', METRICOPT_API_KEY_HASHES: 'nothex' })).toThrow(
      /SHA-256 hex digests/,
    );
  });

  it('parses limits and S3 options with defaults', () => {
    const env = parseValueApiEnv({
      METRICOPT_STORE: 's3://b/p',
      METRICOPT_AUTH: 'none',
      METRICOPT_MAX_ROWS: '16',
      METRICOPT_S3_ENDPOINT: 'http://localhost:4566',
      METRICOPT_S3_FORCE_PATH_STYLE: 'true',
    });
    expect(env).toMatchObject({
      METRICOPT_MAX_ROWS: 16,
      METRICOPT_MAX_BODY_BYTES: 6 * 1024 * 1024,
      METRICOPT_REFRESH_MS: 1000,
      METRICOPT_S3_FORCE_PATH_STYLE: true,
      METRICOPT_API_KEY_HASHES: [],
    });
    expect(() => parseValueApiEnv({ METRICOPT_STORE: 'x', METRICOPT_AUTH: 'none', METRICOPT_MAX_ROWS: '-1' })).toThrow(
      'METRICOPT_MAX_ROWS must be a positive integer',
    );
  });
});
