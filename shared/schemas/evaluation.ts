import { z } from 'zod';
import { issueLine, issueLines } from './zod-issue.js';

/**
 * Wire formats of the evaluation queue: the message a trainer sends for one black-box metric
 * query, the result record a worker writes once per idempotency key, and the evaluator specs
 * a worker is configured with. Object-store keys are laid out as
 *
 *   jobs/<jobId>/splits/<split>.<hash>.labels   Int32 little-endian labels, written once per job
 *   jobs/<jobId>/splits/<split>.<hash>.rows     Int32 little-endian dataset row indices, once per split
 *   jobs/<jobId>/splits/<split>.<hash>.context  Float64 little-endian context columns, once per split
 *   jobs/<jobId>/predictions/<idempotencyKey>.f32 Float32 little-endian scores, one per query
 *   jobs/<jobId>/predictions/<idempotencyKey>.emb.f32 Float32 little-endian embeddings (n x dim), per query
 *   jobs/<jobId>/results/<idempotencyKey>.json  the result record (conditional create)
 *   jobs/<jobId>/claims/<idempotencyKey>.json   a worker's short-lived claim while it evaluates
 */

/** Ids that become object-store key segments: no '/', no dots-only, bounded length. */
const keySegment = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be letters, digits, ".", "_" or "-" (a key segment)');

/** Where a payload lives: an object-store key, or base64 bytes inline for small payloads. */
export const payloadRefSchema = z.union([
  z.object({ key: z.string().min(1).max(1024) }).strict(),
  z.object({ inline: z.base64() }).strict(),
]);
export type PayloadRef = z.infer<typeof payloadRefSchema>;

export const EVALUATION_MESSAGE_VERSION = 'metricopt.evaluation/v1';

/** At most this many named context columns per split. */
export const MAX_CONTEXT_COLUMNS = 256;

/** A context column's name: what a metric reads as `context[name]` (a CSV header, a JSON key). */
export const contextColumnNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(
    /^[A-Za-z_][A-Za-z0-9_.-]*$/,
    'context column names are a letter or "_", then letters, digits, "_", "." or "-"',
  );

/**
 * A split's per-row context in the store: the named columns' float64 little-endian values, one
 * column after the other (columns.length x n), written once per split and referenced by key.
 */
export const contextRefSchema = z
  .object({
    columns: z.array(contextColumnNameSchema).min(1).max(MAX_CONTEXT_COLUMNS),
    data: payloadRefSchema,
  })
  .strict()
  .refine((c) => new Set(c.columns).size === c.columns.length, { message: 'context column names must be unique' });
export type ContextRef = z.infer<typeof contextRefSchema>;

export const evaluationMessageSchema = z
  .object({
    version: z.literal(EVALUATION_MESSAGE_VERSION),
    jobId: keySegment,
    taskId: z.int().min(0),
    step: z.int().min(0),
    split: keySegment,
    /** Evaluator name, resolved by the worker's evaluator registry. */
    evaluator: z.string().min(1).max(200),
    /** One result per key: a redelivered or duplicated message never runs the evaluator twice. */
    idempotencyKey: keySegment,
    /** Float32 little-endian scores (n, or n x classes row-major). */
    predictions: payloadRefSchema,
    /** Int32 little-endian labels (n). */
    labels: payloadRefSchema,
    /** Int32 little-endian dataset row indices (n): EvaluationInput.rows. Written once per split. */
    rows: payloadRefSchema.optional(),
    /** Named per-row context columns (n each): EvaluationInput.context. Written once per split. */
    context: contextRefSchema.optional(),
    /**
     * Float32 little-endian L2-normalised embeddings (n x dim, row-major): EvaluationInput.embeddings,
     * for metrics whose outputs include 'embedding'. Per query (they change with phi), like predictions.
     */
    embeddings: z
      .object({ dim: z.int().min(1).max(65_536), data: payloadRefSchema })
      .strict()
      .optional(),
    classes: z.int().min(2),
    /** Per-call evaluator timeout the trainer asks for; the worker's own limit applies when absent. */
    timeoutMs: z.int().positive().optional(),
    sentAt: z.iso.datetime(),
  })
  .strict();
export type EvaluationMessage = z.infer<typeof evaluationMessageSchema>;

/** Stable codes of a failed evaluation: the metric codes plus those the queue adds. */
export const evaluationErrorCodeSchema = z.enum([
  'UNKNOWN_METRIC',
  'EVALUATOR_MODULE_INVALID',
  'EVALUATOR_FAILED',
  'EVALUATOR_INVALID_VALUE',
  'EVALUATOR_TIMEOUT',
  'METRIC_INPUT_INVALID',
  /** The message did not parse: it went straight to the dead-letter queue. */
  'MESSAGE_INVALID',
  /** An input key the message refers to does not exist in the store. */
  'INPUT_MISSING',
  /** The trainer's deadline passed before any result was recorded. */
  'EVALUATION_DEADLINE_EXCEEDED',
  /** The queue dead-lettered the message with no result recorded (e.g. its worker died on the last delivery). */
  'DEAD_LETTERED',
]);
export type EvaluationErrorCode = z.infer<typeof evaluationErrorCodeSchema>;

export const evaluationResultSchema = z
  .object({
    version: z.literal('metricopt.evaluation-result/v1'),
    jobId: keySegment,
    taskId: z.int().min(0),
    step: z.int().min(0),
    idempotencyKey: keySegment,
    evaluator: z.object({ name: z.string(), version: z.string().optional() }).strict(),
    /** Delivery attempt that produced this record (1 = first delivery). */
    attempt: z.int().min(1),
    workerId: z.string(),
    completedAt: z.iso.datetime(),
    outcome: z.discriminatedUnion('ok', [
      z
        .object({
          ok: z.literal(true),
          /** Natural direction, as the evaluator returned it. */
          value: z.number().min(0).max(1),
          /** Lower is better, in [0, 1]. */
          normalised: z.number().min(0).max(1),
          direction: z.enum(['minimize', 'maximize']),
          durationMs: z.number().min(0),
        })
        .strict(),
      z.object({ ok: z.literal(false), code: evaluationErrorCodeSchema, message: z.string() }).strict(),
    ]),
  })
  .strict();
export type EvaluationResult = z.infer<typeof evaluationResultSchema>;

/** What an evaluator reads besides labels (EvaluatorPort `outputs`): class probabilities, embeddings. */
export const outputKindsSchema = z
  .array(z.enum(['probabilities', 'embedding']))
  .min(1)
  .max(2);

/** How a worker gets an evaluator; the registry lists these plus the built-ins. */
export const evaluatorSpecSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('builtin'), name: z.string().min(1) }).strict(),
  /** A JavaScript module bundled with the worker whose default export is an Evaluator. */
  z.object({ kind: z.literal('module'), path: z.string().min(1) }).strict(),
  /** A metric that lives in another system, reached by a signed POST. */
  z
    .object({
      kind: z.literal('webhook'),
      name: z.string().min(1),
      url: z.url({ protocol: /^https?$/ }),
      direction: z.enum(['minimize', 'maximize']),
      /** HMAC-SHA256 key for the `x-metricopt-signature` header. */
      secret: z.string().min(16, 'webhook secret must have at least 16 characters'),
      timeoutMs: z.int().positive().default(10_000),
      version: z.string().optional(),
      /** The output kinds it reads (absent: probabilities only); 'embedding' adds `embeddings` to each POST. */
      outputs: outputKindsSchema.optional(),
    })
    .strict(),
]);
export type EvaluatorSpec = z.infer<typeof evaluatorSpecSchema>;
export type WebhookEvaluatorSpec = Extract<EvaluatorSpec, { kind: 'webhook' }>;

/** One configured webhook as METRICOPT_WEBHOOKS and `metricopt evaluate --webhooks` list it (the secret comes apart). */
const webhookEntrySchema = z
  .object({
    name: z.string().min(1),
    url: z.string(),
    direction: z.enum(['minimize', 'maximize']),
    timeoutMs: z.int().positive().optional(),
    version: z.string().optional(),
    outputs: outputKindsSchema.optional(),
  })
  .strict();
export type WebhookEntry = z.infer<typeof webhookEntrySchema>;

/** METRICOPT_WEBHOOKS: a JSON array of { name, url, direction, timeoutMs?, version?, outputs? } (default none). */
export const webhookListSchema = z
  .string()
  .default('[]')
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'METRICOPT_WEBHOOKS must be a JSON array' });
      return z.NEVER;
    }
  })
  .pipe(z.array(webhookEntrySchema, { error: 'METRICOPT_WEBHOOKS must be a JSON array of { name, url, direction }' }));

/** Webhook specs from METRICOPT_WEBHOOKS-style JSON (also `metricopt evaluate --webhooks`); throws one line. */
export function parseWebhooks(json: string, secret: string | undefined): EvaluatorSpec[] {
  const parsed = webhookListSchema.safeParse(json);
  if (!parsed.success) throw new Error(issueLines(parsed.error));
  if (parsed.data.length > 0 && !secret) {
    throw new Error('METRICOPT_WEBHOOK_SECRET is required when METRICOPT_WEBHOOKS lists any webhook');
  }
  return webhookSpecs(parsed.data, secret);
}

/** The evaluator specs of webhook entries with their shared secret; throws one line naming the entry. */
export function webhookSpecs(entries: readonly WebhookEntry[], secret: string | undefined): EvaluatorSpec[] {
  return entries.map((hook) => {
    const spec = evaluatorSpecSchema.safeParse({ kind: 'webhook', ...hook, secret });
    if (!spec.success) {
      throw new Error(describeIssue(`evaluate-metric config: METRICOPT_WEBHOOKS '${hook.name}'`, spec.error));
    }
    return spec.data;
  });
}

/** One line naming the first problem, e.g. "evaluation message: taskId: expected int, received string". */
export function describeIssue(what: string, error: z.ZodError): string {
  return `${what}: ${issueLine(error, '(root)')}`;
}
