import { App } from 'aws-cdk-lib';
import { MetricOptStack } from './metricopt-stack.js';

/**
 * `cdk deploy` (IAM on the value API's function URL), or with API keys:
 * `cdk deploy -c valueApiKeyHashes=<sha256 hex>[,<sha256 hex>...]`.
 */
const app = new App();
const keyHashes = app.node.tryGetContext('valueApiKeyHashes') as string | undefined;
new MetricOptStack(app, 'MetricOpt', {
  valueApiAuth:
    keyHashes === undefined
      ? { mode: 'iam' }
      : { mode: 'api-key', keyHashes: keyHashes.split(',').map((h) => h.trim().toLowerCase()) },
});
app.synth();
