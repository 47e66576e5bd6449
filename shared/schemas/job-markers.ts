import { z } from 'zod';

/**
 * The small marker documents of a job (storage/layout.ts names their keys), each written once
 * with a conditional create.
 */

/** `jobs/<id>/model.json`: the pre-trained model every trainer worker of a fanned-out job must rebuild. */
export const fanOutModelSchema = z.object({ fingerprint: z.string(), backend: z.string() }).strict();
export type FanOutModel = z.infer<typeof fanOutModelSchema>;

/** `jobs/<id>/fanned-out.json`: the job's chunk messages were sent. */
export const fannedOutSchema = z.object({ chunks: z.number().int().min(1), at: z.string() }).strict();

/** `jobs/<id>/started.json`: a fit job was started, and how its runner was launched. */
export const fitStartedSchema = z
  .object({
    via: z.enum(['queue', 'in-process']),
    /** Read leniently: a marker without it counts as stale. */ at: z.string().optional(),
  })
  .strict();
export type FitStarted = z.infer<typeof fitStartedSchema>;

/** `jobs/<id>/cancel.json`: a fit job was cancelled; its runner stops. */
export const fitCancelSchema = z.object({ at: z.string() }).strict();
