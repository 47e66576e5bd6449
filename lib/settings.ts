import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { webhookListSchema } from '../shared/schemas/evaluation.js';
import { parseApiKeyEntries } from '../shared/schemas/value-api-config.js';
import { issueLines } from '../shared/schemas/zod-issue.js';

/**
 * The deployment's settings: `cdk.json` context, overridden with `cdk deploy -c name=value`.
 * Parsed once at synth time; a bad value fails synth with one line naming the setting.
 * `-c` always passes strings, so numbers, booleans and lists also accept their text form.
 */

/** CloudWatch Logs accepts only these retention periods (days). */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Instance families with NVIDIA GPUs that the ECS GPU-optimised (x86_64) AMI supports. */
const GPU_INSTANCE_TYPE = /^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e)\.[0-9]*[a-z]*large$/;

/** GPUs of the multi-GPU sizes (every other size of these families has one). */
const MULTI_GPU: Record<string, number> = {
  'g4dn.12xlarge': 4,
  'g5.12xlarge': 4,
  'g5.24xlarge': 4,
  'g5.48xlarge': 8,
  'g6.12xlarge': 4,
  'g6.24xlarge': 4,
  'g6.48xlarge': 8,
  'g6e.12xlarge': 4,
  'g6e.24xlarge': 4,
  'g6e.48xlarge': 8,
  'gr6.8xlarge': 1,
  'p3.8xlarge': 4,
  'p3.16xlarge': 8,
  'p3dn.24xlarge': 8,
  'p4d.24xlarge': 8,
  'p4de.24xlarge': 8,
  'p5.48xlarge': 8,
  'p5e.48xlarge': 8,
};

/** NVIDIA GPUs of an instance type the settings accept. */
export function gpusPerInstance(instanceType: string): number {
  return MULTI_GPU[instanceType] ?? 1;
}

const int = (name: string, min: number, max: number, fallback: number) =>
  z.coerce
    .number({ error: `${name} must be an integer from ${min} to ${max}` })
    .int(`${name} must be an integer from ${min} to ${max}`)
    .min(min, `${name} must be an integer from ${min} to ${max}`)
    .max(max, `${name} must be an integer from ${min} to ${max}`)
    .default(fallback);

const bool = (name: string, fallback: boolean) =>
  z
    .union([z.boolean(), z.enum(['true', 'false'])], { error: `${name} must be true or false` })
    .default(fallback)
    .transform((v) => v === true || v === 'true');

/** A list from a JSON array in cdk.json or a comma-separated `-c` value. */
const list = (name: string) =>
  z
    .union([z.array(z.string()), z.string()], { error: `${name} must be a list (JSON array or comma-separated)` })
    .default([])
    .transform((v) => (typeof v === 'string' ? v.split(',') : v).map((s) => s.trim()).filter((s) => s !== ''));

const settingsObject = z.object({
  /** Default: api-key when valueApiKeyHashes is set, else iam. */
  valueApiAuth: z.enum(['iam', 'api-key'], { error: "valueApiAuth must be 'iam' or 'api-key'" }).optional(),
  valueApiKeyHashes: list('valueApiKeyHashes')
    .transform((hs) => parseApiKeyEntries(hs).entries)
    .refine((hs) => parseApiKeyEntries(hs).invalid === undefined, {
      error:
        'valueApiKeyHashes must be SHA-256 hex digests (64 hex characters each; `npx metricopt serve --hash-key KEY`)',
    }),
  valueApiMemoryMb: int('valueApiMemoryMb', 128, 10240, 1024),
  valueApiProvisionedConcurrency: int('valueApiProvisionedConcurrency', 0, 1000, 0),
  evaluatorBatchSize: int('evaluatorBatchSize', 1, 10, 5),
  /** Also the event source's maximum concurrency (2 to 1000), so the SQS poller never over-polls into throttles. */
  evaluatorReservedConcurrency: int('evaluatorReservedConcurrency', 2, 1000, 5),
  evaluatorMemoryMb: int('evaluatorMemoryMb', 128, 10240, 1024),
  evaluatorTimeoutSeconds: int('evaluatorTimeoutSeconds', 1, 280, 60),
  evaluatorModules: list('evaluatorModules'),
  webhooks: z
    .union([z.array(z.unknown()), z.string()], { error: 'webhooks must be a JSON array' })
    .default([])
    .transform((v, ctx) => {
      const parsed = webhookListSchema.safeParse(typeof v === 'string' ? v : JSON.stringify(v));
      if (parsed.success) return parsed.data;
      for (const issue of parsed.error.issues) {
        const where = issue.path.length > 0 ? ` (entry ${issue.path.join('.')})` : '';
        ctx.addIssue({
          code: 'custom',
          message: `webhooks${where}: ${issue.message.replace(/^METRICOPT_WEBHOOKS /, '')}`,
        });
      }
      return z.NEVER;
    }),
  webhookSecretArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/, {
      error:
        'webhookSecretArn must be a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)',
    })
    .optional(),
  /** At least 5: AWS's advice for a Lambda event source, so a throttle or two never dead-letters a valid message. */
  maxReceiveCount: int('maxReceiveCount', 5, 1000, 5),
  /** The GPU instance types to launch, best first; several, so one type's shortage does not stop training. */
  gpuInstanceTypes: z
    .union([z.array(z.string()), z.string()], {
      error: 'gpuInstanceTypes must be a list (JSON array or comma-separated)',
    })
    .default(['g4dn.xlarge', 'g4dn.2xlarge', 'g4dn.4xlarge'])
    .transform((v) => (typeof v === 'string' ? v.split(',') : v).map((t) => t.trim()).filter((t) => t !== ''))
    .refine((ts) => ts.length > 0 && ts.length <= 20 && ts.every((t) => GPU_INSTANCE_TYPE.test(t)), {
      error:
        'gpuInstanceTypes must list 1 to 20 NVIDIA GPU instance types such as g4dn.xlarge, g5.xlarge or p3.2xlarge',
    })
    .refine((ts) => new Set(ts.map(gpusPerInstance)).size === 1, {
      error: 'gpuInstanceTypes must all have the same number of GPUs (each runs that many trainer tasks)',
    }),
  trainerMinInstances: int('trainerMinInstances', 0, 100, 0),
  trainerMaxInstances: int('trainerMaxInstances', 1, 100, 2),
  trainerSpot: bool('trainerSpot', false),
  trainerCpu: int('trainerCpu', 256, 192 * 1024, 3072),
  trainerMemoryMiB: int('trainerMemoryMiB', 512, 2048 * 1024, 12288),
  trainerVolumeGiB: int('trainerVolumeGiB', 30, 16384, 100),
  logRetentionDays: z.coerce
    .number()
    .refine((d): d is (typeof LOG_RETENTION_DAYS)[number] => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
      error: `logRetentionDays must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
    })
    .default(30),
  jobDataExpirationDays: int('jobDataExpirationDays', 1, 3650, 30),
  checkpointNoncurrentDays: int('checkpointNoncurrentDays', 1, 3650, 90),
  /** The jobs queue's oldest message waiting longer than this raises an alarm. */
  jobsAgeAlarmMinutes: int('jobsAgeAlarmMinutes', 5, 20160, 360),
  alarmTopicArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:.+$/, { error: 'alarmTopicArn must be an SNS topic ARN' })
    .optional(),
});

export const settingsSchema = settingsObject
  .superRefine((s, ctx) => {
    if (s.valueApiAuth === 'api-key' && s.valueApiKeyHashes.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['valueApiKeyHashes'],
        message: 'valueApiKeyHashes is required when valueApiAuth is api-key',
      });
    }
    if (s.valueApiAuth === 'iam' && s.valueApiKeyHashes.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['valueApiKeyHashes'],
        message: 'valueApiKeyHashes is set but valueApiAuth is iam: drop the hashes or set valueApiAuth=api-key',
      });
    }
    if (s.trainerMinInstances > s.trainerMaxInstances) {
      ctx.addIssue({
        code: 'custom',
        path: ['trainerMinInstances'],
        message: `trainerMinInstances (${s.trainerMinInstances}) must not exceed trainerMaxInstances (${s.trainerMaxInstances})`,
      });
    }
    if (s.webhooks.length > 0 && s.webhookSecretArn === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['webhookSecretArn'],
        message: 'webhookSecretArn is required when webhooks lists any webhook (the HMAC key, in Secrets Manager)',
      });
    }
    for (const path of s.evaluatorModules) {
      if (isAbsolute(path) || path.split(/[\\/]/).includes('..') || !/^[A-Za-z0-9._/-]+$/.test(path)) {
        ctx.addIssue({
          code: 'custom',
          path: ['evaluatorModules'],
          message: `evaluatorModules: '${path}' must be a path inside the project, relative to its root (letters, digits, '.', '_', '-', '/')`,
        });
      } else if (!/\.(m?js|ts|mts)$/.test(path)) {
        ctx.addIssue({
          code: 'custom',
          path: ['evaluatorModules'],
          message: `evaluatorModules: '${path}' must be a .js, .mjs, .ts or .mts module`,
        });
      }
    }
  })
  .transform((s) => ({
    ...s,
    valueApiAuth: s.valueApiAuth ?? (s.valueApiKeyHashes.length > 0 ? ('api-key' as const) : ('iam' as const)),
  }));

export type Settings = z.infer<typeof settingsSchema>;
/** Settings as written in cdk.json or passed with -c (before defaults and coercion). */
export type SettingsInput = z.input<typeof settingsSchema>;

/** The names that are settings: every other context key (CDK feature flags, `aws:*`) is ignored. */
export const SETTING_NAMES = Object.keys(settingsObject.shape) as (keyof Settings)[];

/** A bad setting: its message is one line naming the setting. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  readonly code = 'SETTINGS_INVALID';
}

/**
 * Parses the settings or throws one line naming each bad setting. `projectRoot` is where
 * evaluator modules are looked up (they must exist: they are bundled into the function).
 */
export function parseSettings(input: Record<string, unknown>, projectRoot: string): Settings {
  const parsed = settingsSchema.safeParse(input);
  if (!parsed.success) {
    throw new SettingsError(`metricopt settings: ${issueLines(parsed.error)}`);
  }
  const missing = parsed.data.evaluatorModules.filter((p) => !existsSync(join(projectRoot, p)));
  if (missing.length > 0) {
    throw new SettingsError(
      `metricopt settings: evaluatorModules: no such file ${missing.map((p) => `'${p}'`).join(', ')}`,
    );
  }
  return parsed.data;
}

/** The settings among a CDK app's context (cdk.json and -c), by name. */
export function settingsFromContext(tryGetContext: (key: string) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const value = tryGetContext(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}
