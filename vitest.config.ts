import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (embedded adapters, moto) and `integration` (test/integration/, against
 * LocalStack, which test/integration/global-setup.ts starts and stops). Integration files run
 * one at a time after the unit tests: one of them pauses the emulator, which would stall a
 * neighbour. `npm test` runs both; `npx vitest run --project unit` only the first.
 */
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', './test/integration/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: [
            'test/**/*.test.ts',
            'shared/**/*.test.ts',
            'functions/**/*.test.ts',
            'cli/**/*.test.ts',
            'lib/**/*.test.ts',
          ],
          exclude: ['test/integration/**'],
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
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
