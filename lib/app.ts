import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { MetricOptStack } from './metricopt-stack.js';
import { SettingsError, settingsFromContext } from './settings.js';

/**
 * `npx cdk deploy`; settings come from cdk.json's context and `-c name=value` (lib/settings.ts),
 * e.g. `npx cdk deploy -c valueApiAuth=api-key -c valueApiKeyHashes=<sha256 hex>`.
 * cdk-nag's AwsSolutions pack checks the app at every synth.
 */
const app = new App();
try {
  new MetricOptStack(app, 'MetricOpt', {
    settings: settingsFromContext((key) => app.node.tryGetContext(key)),
    // The account and region of the CLI's credentials: the GPU fleet then spans every AZ of the
    // region (looked up once and cached in cdk.context.json); without credentials, two.
    ...(process.env.CDK_DEFAULT_ACCOUNT && process.env.CDK_DEFAULT_REGION
      ? { env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION } }
      : {}),
  });
} catch (error) {
  // A bad setting is the operator's mistake: one line, no stack trace.
  if (!(error instanceof SettingsError)) throw error;
  console.error(error.message);
  process.exit(1);
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
