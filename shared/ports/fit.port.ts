import type { FitJobSpec } from '../schemas/job.js';
import type { MetricOracle } from './metric-oracle.port.js';

/** The ports of bring-your-own-model fit jobs (shared/use-cases/byom/), implemented by the entry points. */

/** Starts a job's fit: sends its message or runs it; returns how. */
export interface FitLauncher {
  via: 'queue' | 'in-process';
  /** Why this deployment cannot start fits (e.g. Lambda without a jobs queue); set, start is refused. */
  unavailable?: string;
  launch(spec: FitJobSpec): Promise<void>;
  /** Stops the job if this launcher is running it (a queue worker stops at its next heartbeat). */
  cancel?(id: string): Promise<void>;
  /** Whether this launcher was given the job (runs it or has it queued), for a launcher in this process. */
  knows?(id: string): boolean;
}

/** The oracle that scores a job's predictions for one evaluator name (built by the entry point). */
export type FitOracleFactory = (metric: { name: string; direction: 'minimize' | 'maximize' }) => Promise<MetricOracle>;
