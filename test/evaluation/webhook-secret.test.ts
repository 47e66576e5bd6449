import { describe, expect, it } from 'vitest';
import { parseEvaluateMetricEnv } from '../../functions/evaluate-metric/config.js';

/**
 * The webhooks' HMAC key from Secrets Manager (METRICOPT_WEBHOOK_SECRET_ARN), as the deployed
 * evaluator reads it; the read itself, on moto: webhook-secret.system.test.ts.
 */
const base = {
  METRICOPT_STORE: 's3://bucket/prefix',
  METRICOPT_DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/dlq',
  METRICOPT_WEBHOOKS: JSON.stringify([{ name: 'scorer', url: 'https://scorer.example/score', direction: 'maximize' }]),
};

describe('webhook secret settings', () => {
  it('takes the key from the secret named by METRICOPT_WEBHOOK_SECRET_ARN, or the plain key locally, and names what is missing', () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:metricopt-webhook-AbCdEf';
    const fromArn = parseEvaluateMetricEnv(
      { ...base, METRICOPT_WEBHOOK_SECRET_ARN: arn },
      'key-read-from-the-secret-0123',
    );
    expect(fromArn.evaluators).toHaveLength(1);
    expect(() => parseEvaluateMetricEnv(base)).toThrow(
      /METRICOPT_WEBHOOK_SECRET_ARN \(or METRICOPT_WEBHOOK_SECRET\) is required when METRICOPT_WEBHOOKS lists any webhook/,
    );
    expect(() => parseEvaluateMetricEnv({ ...base, METRICOPT_WEBHOOK_SECRET_ARN: arn })).toThrow(
      /METRICOPT_WEBHOOK_SECRET_ARN is set but its secret was not read/,
    );
    expect(() => parseEvaluateMetricEnv({ ...base, METRICOPT_WEBHOOK_SECRET_ARN: 'not-an-arn' })).toThrow(
      /METRICOPT_WEBHOOK_SECRET_ARN must be a Secrets Manager secret ARN/,
    );
  });
});
