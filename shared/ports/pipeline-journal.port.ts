import type { CheckpointContent } from '../schemas/checkpoint.js';
import type { JobStage, JobState } from '../schemas/job.js';
import type { ValueFunctionHealth } from '../schemas/job-result.js';
import type { RngState } from '../util/random.js';

/** Where a resumable run keeps its state; absent, the pipeline runs start to end in memory. */
export interface PipelineJournal {
  chunkTasks: number;
  queryBatch: number;
  resume: JobState | undefined;
  stopRequested(): boolean;
  saveChunk(chunk: number, bytes: Uint8Array): Promise<void>;
  loadChunk(chunk: number): Promise<Uint8Array | undefined>;
  save(progress: JournalProgress): Promise<void>;
  /** The fitted checkpoint is stashed before it is saved, so a resume never saves a second version. */
  stashResult(checkpoint: CheckpointContent): Promise<CheckpointContent>;
}

export interface JournalProgress {
  stage: JobStage;
  modelFingerprint: string;
  trajectories: { tasks: number; chunkTasks: number; chunksDone: number; tasksDone: number; rng: RngState | null };
  observations: {
    done: number;
    total: number;
    observations: { step: number; value: number }[][];
    failures: JobState['observations']['failures'];
  };
  health: ValueFunctionHealth | null;
  valueFunction: { id: string; version: number; createdAt: string } | null;
  /** The stage's own progress, for the ETA. */
  stageDone: number;
  stageTotal: number;
}
