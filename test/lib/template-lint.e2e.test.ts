import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricOptStack } from '../../lib/metricopt-stack.js';
import { cdkApp, ENV_VARIANT, VARIANTS } from './synth-fixtures.js';

/**
 * cfn-lint and checkov (pinned in scripts/python-tools.txt, run from the project's venv) on the
 * synthesized templates of the default settings and of every optional setting at once: no
 * cfn-lint error, and no checkov failure that is not suppressed in the template's metadata
 * with its reason (lib/checkov-suppressions.ts). Checkov runs once, on both templates.
 */
let templates: string[] = [];
let outdir = '';
let python = '';

beforeAll(() => {
  python = execFileSync('scripts/python-tools.sh', { encoding: 'utf8' }).trim();
  outdir = mkdtempSync(join(tmpdir(), 'metricopt-lint-'));
  const { env, azs } = ENV_VARIANT;
  const app = cdkApp(outdir, { [`availability-zones:account=${env.account}:region=${env.region}`]: azs });
  new MetricOptStack(app, 'MetricOpt');
  new MetricOptStack(app, 'MetricOptExtras', { settings: VARIANTS.apiKeySpotG5Extras, env });
  const assembly = app.synth();
  templates = assembly.stacks.map((s) => join(assembly.directory, s.templateFile));
}, 300_000);
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe('synthesized templates', () => {
  it('have no cfn-lint error (cfn-lint 1.58)', () => {
    // cfn-lint has no `python -m` entry point; its console script calls cfnlint.runner.main.
    const r = spawnSync(
      python,
      [
        '-c',
        'import sys; from cfnlint.runner import main; sys.exit(main())',
        '--format',
        'parseable',
        '--',
        ...templates,
      ],
      { encoding: 'utf8' },
    );
    const findings = r.stdout.trim().split('\n').filter(Boolean);
    const errors = findings.filter((f) => /:E\d{4}:/.test(f));
    expect(errors).toEqual([]);
    // Exit codes: 0 clean, 4 warnings only (informational findings are 8); any error sets bit 2.
    expect(r.status === null ? -1 : r.status & 2, r.stderr).toBe(0);
  }, 300_000);

  it('pass every checkov check (3.3.30), each deliberate exception suppressed in the metadata with its reason', () => {
    const r = spawnSync(
      python,
      [
        '-m',
        'checkov.main',
        ...templates.flatMap((t) => ['-f', t]),
        '--framework',
        'cloudformation',
        '--output',
        'json',
        '--skip-download',
      ],
      { encoding: 'utf8', env: { ...process.env, BC_SKIP_MAPPING: 'TRUE' }, maxBuffer: 64 << 20 },
    );
    const reports = JSON.parse(r.stdout) as CheckovReport | CheckovReport[];
    const all = Array.isArray(reports) ? reports : [reports];
    const failed = all.flatMap((rep) =>
      rep.results.failed_checks.map((f) => `${f.check_id} ${f.resource} (${f.check_name})`),
    );
    expect(failed).toEqual([]);
    const skipped = all.flatMap((rep) => rep.results.skipped_checks);
    expect(skipped.length).toBeGreaterThan(0);
    for (const s of skipped) {
      expect(s.check_result?.suppress_comment?.length ?? 0, `${s.check_id} ${s.resource}: its reason`).toBeGreaterThan(
        20,
      );
    }
    expect(all.reduce((a, rep) => a + rep.summary.passed, 0)).toBeGreaterThan(100);
  }, 300_000);
});

interface CheckovReport {
  results: {
    failed_checks: { check_id: string; resource: string; check_name: string }[];
    skipped_checks: { check_id: string; resource: string; check_result?: { suppress_comment?: string } }[];
  };
  summary: { passed: number; failed: number; skipped: number };
}
