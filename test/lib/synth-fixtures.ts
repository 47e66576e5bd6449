import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { MetricOptStack } from '../../lib/metricopt-stack.js';
import type { SettingsInput } from '../../lib/settings.js';

export const KEY_HASH = hashApiKey('a-key');
export const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:metricopt-webhook-AbCdEf';
export const EVALUATOR_MODULE = 'test/lib/fixtures/positive-rate.evaluator.ts';

/** An App with cdk.json's context (its feature flags), as `cdk synth` builds it. */
export function cdkApp(outdir: string, context: Record<string, unknown> = {}): App {
  const cdkJson = JSON.parse(readFileSync(join(process.cwd(), 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };
  return new App({ outdir, context: { ...cdkJson.context, ...context } });
}

/** The setting variants every synth test covers: both auth modes, several GPU instance types, spot on and off. */
export const VARIANTS = {
  iamOnDemandG5: { gpuInstanceTypes: ['g5.xlarge', 'g5.2xlarge'] },
  iamSpotG4dn: { trainerSpot: true },
  apiKeyOnDemandG4dn: { valueApiAuth: 'api-key', valueApiKeyHashes: [KEY_HASH], gpuInstanceTypes: 'g4dn.xlarge' },
  // Everything optional at once, written as `cdk deploy -c name=value` passes them (strings).
  apiKeySpotG5Extras: {
    valueApiAuth: 'api-key',
    valueApiKeyHashes: KEY_HASH,
    trainerSpot: 'true',
    trainerMinInstances: '1',
    trainerMaxInstances: '3',
    valueApiProvisionedConcurrency: '2',
    evaluatorModules: EVALUATOR_MODULE,
    webhooks: '[{"name":"house-metric","url":"https://metrics.example/score","direction":"maximize"}]',
    webhookSecretArn: SECRET_ARN,
    alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:ops',
    gpuInstanceTypes: 'g5.12xlarge,g5.24xlarge',
    jobsAgeAlarmMinutes: '90',
    evaluatorReservedConcurrency: '7',
  },
} satisfies Record<string, SettingsInput>;
export type VariantName = keyof typeof VARIANTS;

/** The variant synthesized for an account and region (the others are environment-agnostic), with its AZs. */
export const ENV_VARIANT = {
  name: 'apiKeySpotG5Extras' as VariantName,
  env: { account: '123456789012', region: 'eu-west-1' },
  azs: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
};

export interface Synthesized {
  stacks: Record<VariantName, MetricOptStack>;
  templates: Record<VariantName, Template>;
  assembly: CloudAssembly;
  cleanup: () => void;
}

/**
 * Synthesizes every variant as one stack of one App: the trainer image's build context is
 * staged once per output folder (it is the project's production node_modules), and esbuild
 * bundles each function as `cdk synth` does.
 */
export function synthesizeVariants(): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'metricopt-cdk-'));
  const { env } = ENV_VARIANT;
  // What `cdk deploy` with credentials looks up and caches in cdk.context.json.
  const app = cdkApp(outdir, { [`availability-zones:account=${env.account}:region=${env.region}`]: ENV_VARIANT.azs });
  const stacks = Object.fromEntries(
    Object.entries(VARIANTS).map(([name, settings]) => [
      name,
      new MetricOptStack(app, name, { settings, ...(name === ENV_VARIANT.name ? { env } : {}) }),
    ]),
  ) as Record<VariantName, MetricOptStack>;
  const assembly = app.synth();
  const templates = Object.fromEntries(
    Object.entries(stacks).map(([name, stack]) => [name, Template.fromStack(stack)]),
  ) as Record<VariantName, Template>;
  return { stacks, templates, assembly, cleanup: () => rmSync(outdir, { recursive: true, force: true }) };
}
