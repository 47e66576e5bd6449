import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'))
      newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

/** The child processes run the built CLI (dist/): rebuilt here when a source is newer than it. */
export function ensureBuiltCli(): void {
  const marker = join(root, 'dist/shared/use-cases/jobs/train-value-function.js');
  const sources = Math.max(...['shared', 'cli', 'functions', 'gpu-tasks'].map((d) => newestSource(join(root, d))));
  if (existsSync(marker) && statSync(marker).mtimeMs >= sources) return;
  const r = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('ensureBuiltCli: tsc -p tsconfig.build.json failed');
  // tsc leaves an output whose content did not change as it was: date the marker, so the next
  // check (another file, the tier's global setup) sees the build as current.
  const now = new Date();
  utimesSync(marker, now, now);
}

export const cliPath = join(root, 'bin/metricopt.mjs');
