import { z } from 'zod';

/** A dense layer, weights row-major [in][out] (BatchNorm, when trained with it, folded in). */
export const denseLayerSchema = z
  .object({
    in: z.number().int().positive(),
    out: z.number().int().positive(),
    weights: z.array(z.number()),
    bias: z.array(z.number()),
  })
  .refine((l) => l.weights.length === l.in * l.out && l.bias.length === l.out, {
    message: 'layer weights must have in*out entries and bias out entries',
  });
export type DenseLayer = z.infer<typeof denseLayerSchema>;

export const metricRefSchema = z.object({
  name: z.string().min(1),
  direction: z.enum(['minimize', 'maximize']),
});

export const checkpointIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'ids are lower-case letters, digits, ".", "_" and "-" (at most 63)');

/**
 * The value-function checkpoint: a versioned, self-describing artifact. Serving needs nothing
 * else (no tfjs): f(phi) = targetMean + targetStd * mean_m member_m((phi - inputMean) / inputStd),
 * hidden layers ReLU, last layer linear; the result is the normalised metric (lower is better).
 */
const checkpointObject = z.object({
  format: z.literal('metricopt.value-function'),
  schemaVersion: z.literal(1),
  id: checkpointIdSchema,
  version: z.number().int().positive(),
  createdAt: z.string(),
  libraryVersion: z.string(),
  d: z.number().int().positive(),
  metric: metricRefSchema,
  recipe: z.enum(['paper', 'tuned']),
  dataset: z.string(),
  /** `external`: an adapter of the user's own model, fitted from uploaded observations (`metricopt fit`); `low-rank`: input biases, a low-rank input-to-logit term and output biases (shared/models/low-rank-logit.ts); `context`: the same with one weight per context column instead of the random projections. */
  adapter: z.object({
    kind: z.enum(['input-bias', 'film', 'low-rank', 'context', 'external']),
    d: z.number().int().positive(),
  }),
  inputNormalisation: z.object({ mean: z.array(z.number()), std: z.array(z.number().positive()) }),
  targetNormalisation: z.object({ mean: z.number(), std: z.number().positive() }),
  hiddenActivation: z.literal('relu'),
  /** Index of the layer whose (activated) output is the embedding g(phi). */
  embeddingLayer: z.number().int().nonnegative(),
  members: z.array(z.object({ layers: z.array(denseLayerSchema).min(1) })).min(1),
  training: z
    .object({
      tasks: z.number().int().nonnegative(),
      heldOutTasks: z.number().int().nonnegative(),
      heldOutMae: z.number().nullable(),
      constantMae: z.number().nullable(),
      spearman: z.number().nullable(),
    })
    .catchall(z.unknown()),
});

/** The checks the shape alone cannot say: normalisation and layer widths fit d. */
const checkShapes = (
  c: Pick<z.infer<typeof checkpointObject>, 'd' | 'inputNormalisation' | 'members'>,
  ctx: z.RefinementCtx,
) => {
  if (c.inputNormalisation.mean.length !== c.d || c.inputNormalisation.std.length !== c.d) {
    ctx.addIssue({ code: 'custom', message: `input normalisation must have d = ${c.d} entries` });
  }
  for (const [m, member] of c.members.entries()) {
    let width = c.d;
    for (const [i, layer] of member.layers.entries()) {
      if (layer.in !== width) {
        ctx.addIssue({ code: 'custom', message: `member ${m} layer ${i} expects ${layer.in} inputs, gets ${width}` });
      }
      width = layer.out;
    }
    if (width !== 1) ctx.addIssue({ code: 'custom', message: `member ${m} must end in one output` });
  }
};

export const valueFunctionCheckpointSchema = checkpointObject.superRefine(checkShapes);
export type ValueFunctionCheckpoint = z.infer<typeof valueFunctionCheckpointSchema>;

/** A checkpoint's content before it is saved as a version (a job's stashed result). */
export const checkpointContentSchema = checkpointObject.omit({ version: true }).superRefine(checkShapes);
export type CheckpointContent = z.infer<typeof checkpointContentSchema>;
