/**
 * The trainer task's environment (gpu-tasks/config.ts parses it): the task definition sets
 * exactly this, and the LocalStack end-to-end test runs the container with exactly this too.
 */
export interface TrainerLocations {
  /** s3://bucket/ (prefix optional). */
  store: string;
  jobsQueueUrl: string;
  jobsDeadLetterQueueUrl: string;
  evaluationQueueUrl: string;
  evaluationDeadLetterQueueUrl: string;
}

/**
 * The compute backend the deployed trainer uses: named, never `auto`, so a GPU instance whose
 * GPU backend does not load fails the task loudly instead of training on the CPU
 * (gpu-tasks/README.md, "GPU path").
 */
export const TRAINER_BACKEND = 'tensorflow';

export function trainerEnvironment(l: TrainerLocations): Record<string, string> {
  return {
    METRICOPT_STORE: l.store,
    METRICOPT_JOBS_QUEUE: l.jobsQueueUrl,
    METRICOPT_JOBS_DLQ: l.jobsDeadLetterQueueUrl,
    METRICOPT_EVALUATION_QUEUE: l.evaluationQueueUrl,
    METRICOPT_EVALUATION_DLQ: l.evaluationDeadLetterQueueUrl,
    METRICOPT_BACKEND: TRAINER_BACKEND,
  };
}
