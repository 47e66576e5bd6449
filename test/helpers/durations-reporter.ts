import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import type { Reporter, TestModule, Vitest } from 'vitest/node';

/** One row per test file: what `bench/RESULTS.md`'s test-duration table is made of. */
export interface FileDuration {
  tier: string;
  file: string;
  tests: number;
  /** Import of the file plus its tests and hooks, in seconds. */
  seconds: number;
  /** The file's slowest single test, in seconds. */
  slowestTestSeconds: number;
}

const round = (ms: number): number => Math.round(ms / 100) / 10;

/** Per-file rows of a finished run, slowest first. */
export function fileDurations(modules: ReadonlyArray<TestModule>, root: string): FileDuration[] {
  return modules
    .map((m) => {
      const tests = [...m.children.allTests()];
      const d = m.diagnostic();
      return {
        tier: m.project.name,
        file: relative(root, m.moduleId),
        tests: tests.length,
        seconds: round(d.collectDuration + d.duration),
        slowestTestSeconds: round(Math.max(0, ...tests.map((t) => t.diagnostic()?.duration ?? 0))),
      };
    })
    .sort((a, b) => b.seconds - a.seconds || a.file.localeCompare(b.file));
}

/** The Markdown table of `rows`: a per-tier summary, then every file. */
export function durationsMarkdown(rows: FileDuration[], wallSeconds: number): string {
  const tiers = [...new Set(rows.map((r) => r.tier))];
  const lines = [
    `Run wall-clock: ${wallSeconds.toFixed(1)} s.`,
    '',
    '| tier | files | tests | sum of file durations (s) |',
    '| --- | ---: | ---: | ---: |',
    ...tiers.map((t) => {
      const of = rows.filter((r) => r.tier === t);
      const tests = of.reduce((s, r) => s + r.tests, 0);
      const seconds = of.reduce((s, r) => s + r.seconds, 0);
      return `| ${t} | ${of.length} | ${tests} | ${seconds.toFixed(1)} |`;
    }),
    '',
    '| tier | file | tests | duration (s) | slowest test (s) |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows.map(
      (r) => `| ${r.tier} | ${r.file} | ${r.tests} | ${r.seconds.toFixed(1)} | ${r.slowestTestSeconds.toFixed(1)} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Records how long every test file took: `.cache/test-durations.json` and `.md` (the table
 * `bench/RESULTS.md` quotes), or the paths' stem in `METRICOPT_TEST_DURATIONS`. Files that did
 * not run (filtered out, skipped) are left out.
 */
export default class DurationsReporter implements Reporter {
  private root = process.cwd();
  private started = 0;

  onInit(vitest: Vitest): void {
    this.root = vitest.config.root;
  }

  onTestRunStart(): void {
    this.started = performance.now();
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const ran = testModules.filter((m) => m.state() !== 'skipped' && m.state() !== 'queued');
    if (ran.length === 0) return;
    const wallSeconds = (performance.now() - this.started) / 1000;
    const rows = fileDurations(ran, this.root);
    const stem = process.env.METRICOPT_TEST_DURATIONS ?? `${this.root}/.cache/test-durations`;
    mkdirSync(dirname(stem), { recursive: true });
    writeFileSync(`${stem}.json`, `${JSON.stringify({ wallSeconds, files: rows }, null, 2)}\n`);
    writeFileSync(`${stem}.md`, durationsMarkdown(rows, wallSeconds));
    console.log(`\ntest durations: ${rows.length} files, ${wallSeconds.toFixed(1)} s wall-clock -> ${stem}.md\n`);
  }
}
