import { defineConfig } from 'vitest/config';

/**
 * Tests in tiers, each a vitest project, chosen by the file name's suffix:
 * - `unit` (`*.test.ts`): in this process only (worker threads included), no child process;
 *   a short timeout.
 * - `system` (`*.system.test.ts`): child processes: the built CLI, evaluator worker processes,
 *   tsc, moto, the esbuild bundles of `cdk synth`.
 * - `e2e` (`*.e2e.test.ts`): Docker, Python (PyTorch, cmaes, cfn-lint/checkov, the Python
 *   client); and `integration` (test/integration/), against LocalStack, which
 *   test/integration/global-setup.ts starts and stops. Integration files run one at a time:
 *   one of them pauses the emulator, which would stall a neighbour.
 * System and e2e rebuild dist/ once, before their files, when a source is newer
 * (test/helpers/build-once.ts). The tiers run in that order (`sequence.groupOrder`);
 * `npm test` runs them all, `npx vitest run --project unit` one.
 * test/helpers/durations-reporter.ts records how long each file took
 * (.cache/test-durations.md; the table in bench/RESULTS.md).
 */
const sources = ['test', 'shared', 'functions', 'cli', 'lib'];
const files = (suffix: string) => sources.map((d) => `${d}/**/*${suffix}`);

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', './test/integration/summary-reporter.ts', './test/helpers/durations-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: files('.test.ts'),
          exclude: [...files('.system.test.ts'), ...files('.e2e.test.ts'), 'test/integration/**'],
          // Short: a unit test that needs longer says so (vi.setConfig, with its reason).
          testTimeout: 20_000,
          // Fixtures (a pre-trained model, recorded trajectories) are built once per file.
          hookTimeout: 60_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: files('.system.test.ts'),
          exclude: ['test/integration/**'],
          globalSetup: ['test/helpers/build-once.ts'],
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: files('.e2e.test.ts'),
          exclude: ['test/integration/**'],
          globalSetup: ['test/helpers/build-once.ts'],
          sequence: { groupOrder: 2 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          setupFiles: ['test/integration/setup-env.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
});
