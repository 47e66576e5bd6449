/** Progress of long work, rendered by the entry point (a bar on a terminal, log lines elsewhere). */
export interface ProgressReporter {
  start(stage: string, total: number): void;
  tick(done: number, note?: string): void;
  end(summary?: string): void;
}

export const silentProgress: ProgressReporter = {
  start() {},
  tick() {},
  end() {},
};
