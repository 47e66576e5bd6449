import type { ProgressReporter } from '../shared/ports/progress.port.js';

/**
 * Progress on stderr: a redrawn bar on a terminal, a few plain lines otherwise (CI logs), so
 * stdout stays clean for --json.
 */
export function stderrProgress(enabled = true): ProgressReporter {
  const tty = process.stderr.isTTY === true;
  let stage = '';
  let total = 0;
  let started = 0;
  let lastPct = -1;
  let lastDraw = 0;
  const elapsed = () => ((performance.now() - started) / 1000).toFixed(1);
  return {
    start(s, t) {
      if (!enabled) return;
      stage = s;
      total = t;
      started = performance.now();
      lastPct = -1;
      if (!tty) process.stderr.write(`» ${stage} (${total})\n`);
    },
    tick(done, note) {
      if (!enabled || total <= 0) return;
      const frac = Math.min(1, done / total);
      if (tty) {
        const now = performance.now();
        if (now - lastDraw < 80 && done < total) return;
        lastDraw = now;
        const width = 28;
        const filled = Math.round(frac * width);
        const eta = frac > 0 ? ((performance.now() - started) / 1000) * (1 / frac - 1) : 0;
        const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
        process.stderr.write(
          `\r\x1b[2K${stage} ${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${elapsed()}s eta ${eta.toFixed(0)}s${note ? ` ${note}` : ''}`,
        );
      } else {
        const pct = Math.floor(frac * 4) * 25;
        if (pct > lastPct && pct < 100) {
          lastPct = pct;
          if (pct > 0) process.stderr.write(`  ${stage}: ${pct}% (${elapsed()} s)${note ? ` ${note}` : ''}\n`);
        }
      }
    },
    end(summary) {
      if (!enabled) return;
      if (tty) process.stderr.write(`\r\x1b[2K✓ ${stage} ${elapsed()}s${summary ? ` ${summary}` : ''}\n`);
      else process.stderr.write(`  ${stage}: done in ${elapsed()} s${summary ? ` ${summary}` : ''}\n`);
    },
  };
}
