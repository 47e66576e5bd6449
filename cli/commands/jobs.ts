import type { Command } from 'commander';
import type { JobStatus } from '../../shared/schemas/job.js';
import { readJobStatus, shownJobState } from '../../shared/storage/job-documents.js';
import { CliError } from '../errors.js';
import { openStoreLocation as openValueStore } from '../../shared/adapters/from-url.js';
import { storeOptionsFromEnv } from '../locations.js';

interface StatusOptions {
  store: string;
  json?: boolean;
  watch?: boolean;
  interval: string;
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description('Training jobs in an object store (metricopt train --job ...)');
  jobs
    .command('status <id>')
    .description(
      "Print a job's status document (state, stage, tasks, metric evaluations, held-out figures, ETA); a running job whose runner stopped renewing its lease shows as stalled",
    )
    .requiredOption('--store <dir|s3://bucket/prefix>', 'the object store the job runs against')
    .option('--json', 'print the status document as JSON')
    .option('--watch', 'redraw every --interval ms with a progress bar until the job is done, failed or interrupted')
    .option('--interval <ms>', 'refresh interval of --watch', '1000')
    .action(async (id: string, o: StatusOptions) => {
      const store = await openValueStore(o.store, storeOptionsFromEnv());
      const interval = Number(o.interval);
      if (!Number.isInteger(interval) || interval < 50) throw new CliError('USAGE', '--interval must be >= 50 (ms)');
      const tty = process.stdout.isTTY === true;
      let lines = 0;
      for (;;) {
        const status = await readJobStatus(store, id);
        if (!status.ok) throw status.error;
        // A running job whose lease expired is shown as stalled (its runner is gone).
        const s = status.value;
        const shown = shownJobState(s);
        if (o.json) process.stdout.write(`${JSON.stringify({ ...s, state: shown })}\n`);
        else {
          const text = formatJobStatus(s, o.watch === true, shown);
          if (o.watch && tty && lines > 0) process.stdout.write(`\x1b[${lines}A\x1b[0J`);
          process.stdout.write(text);
          lines = text.split('\n').length - 1;
        }
        if (!o.watch || shown !== 'running') return;
        await new Promise((r) => setTimeout(r, interval));
      }
    });
}

const f = (v: number | null | undefined, digits = 4) => (v === null || v === undefined ? 'n/a' : v.toFixed(digits));

/** A progress bar of `width` cells for done/total. */
export function progressBar(done: number, total: number, width = 28): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(frac * width);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${(frac * 100).toFixed(0).padStart(3)}%`;
}

export function formatJobStatus(s: JobStatus, bar = false, shown: JobStatus['state'] | 'stalled' = s.state): string {
  const e = s.evaluations;
  const lines = [
    `job ${s.jobId}: ${shown} (stage ${s.stage}, backend ${s.backend})`,
    `  tasks        ${s.tasks.done}/${s.tasks.total}${bar ? `  ${progressBar(s.tasks.done, s.tasks.total)}` : ''}`,
    `  evaluations  ${e.sent}/${e.total} sent, ${e.returned} returned, ${e.failed} failed${bar ? `  ${progressBar(e.sent, e.total)}` : ''}`,
  ];
  if (s.heldOut) {
    lines.push(
      `  held-out     MAE ${f(s.heldOut.mae)} (constant ${f(s.heldOut.constantMae)}), Spearman ${f(s.heldOut.spearman)}, ${s.heldOut.observations} observations`,
    );
  }
  if (s.etaSeconds !== null && s.state === 'running')
    lines.push(`  eta          ${s.etaSeconds.toFixed(0)} s (this stage)`);
  if (s.valueFunction) lines.push(`  checkpoint   ${s.valueFunction.id} v${s.valueFunction.version}`);
  if (s.lastError) lines.push(`  last error   [${s.lastError.code}] ${s.lastError.message}`);
  if (shown === 'stalled') {
    lines.push(
      `  stalled      its runner stopped renewing its lease at ${s.leaseExpiresAt}; run the job again to resume it (metricopt train --job-id ${s.jobId} --store ..., or metricopt fit --job ${s.jobId})`,
    );
  }
  lines.push(`  started ${s.startedAt}, updated ${s.updatedAt}`);
  return `${lines.join('\n')}\n`;
}
