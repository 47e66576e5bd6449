import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { startLocalQueueOracle } from '../../cli/local-queue-oracle.js';
import { InProcessMetricOracle } from '../../shared/adapters/metric-oracle.in-process.js';
import { mcr } from '../../shared/metrics/builtins.js';
import type { MetricValue } from '../../shared/metrics/checked-evaluator.js';
import type { Result } from '../../shared/util/result.js';
import { randomLabels, randomQueries, tempDir } from './fixtures.js';

/**
 * The worker processes run the built CLI (dist/): `npm ci` builds it (prepare); build here
 * only when this checkout has not been built yet.
 */
beforeAll(() => {
  if (existsSync('dist/cli/commands/evaluate.js')) return;
  spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
});

const N = 500;
const values = (rs: Result<MetricValue, unknown>[]) => rs.map((r) => (r.ok ? r.value.value : 'failed'));

describe('startLocalQueueOracle', () => {
  it('evaluates through 2 worker processes with exactly the in-process values', async () => {
    const dir = await tempDir('metricopt-lqo-');
    const labels = randomLabels(N, 1);
    const queries = randomQueries('job-lqo', N, 12, 2);
    const oracle = await startLocalQueueOracle({ metric: 'mcr', workers: 2, dir });
    try {
      expect(oracle.workers.map((w) => typeof w.pid)).toEqual(['number', 'number']);
      expect(new Set(oracle.workers.map((w) => w.pid)).size).toBe(2);
      await oracle.registerSplit('val', { labels, classes: 2 });
      const direct = new InProcessMetricOracle(mcr);
      await direct.registerSplit('val', { labels, classes: 2 });

      const viaQueue = await oracle.evaluate(queries);

      expect(values(viaQueue)).toEqual(values(await direct.evaluate(queries)));
      const workerIds = new Set<string>();
      for (const key of await oracle.store.list('jobs/job-lqo/results/')) {
        const record = JSON.parse(new TextDecoder().decode(await oracle.store.get(key)));
        workerIds.add(record.workerId.split(':')[1]);
      }
      expect([...workerIds].every((pid) => oracle.workers.some((w) => String(w.pid) === pid))).toBe(true);
    } finally {
      await oracle.close();
    }
    expect(oracle.workers.every((w) => w.exitCode !== null || w.signalCode !== null)).toBe(true);
  });

  it('loses nothing when a worker is killed mid-batch: every query ends with exactly one result', async () => {
    const dir = await tempDir('metricopt-kill-');
    const runsLog = join(dir, 'runs.log');
    const modulePath = join(dir, 'slow-error.mjs');
    await writeFile(
      modulePath,
      `import { appendFileSync } from 'node:fs';
export default {
  name: 'slow-error',
  direction: 'minimize',
  async evaluate({ scores, labels }) {
    appendFileSync(${JSON.stringify(runsLog)}, process.pid + '\\n');
    await new Promise((r) => setTimeout(r, 40));
    let wrong = 0;
    for (let i = 0; i < labels.length; i++) if ((scores[i] >= 0.5 ? 1 : 0) !== labels[i]) wrong++;
    return wrong / labels.length;
  },
};
`,
    );
    const labels = randomLabels(N, 3);
    const queries = randomQueries('job-kill', N, 40, 4);
    const oracle = await startLocalQueueOracle({
      metric: 'slow-error',
      evaluatorModule: modulePath,
      workers: 3,
      dir,
      evaluatorTimeoutMs: 500,
      deadlineMs: 60_000,
      batchSize: 4, // the victim dies holding up to 4 deliveries
    });
    try {
      await oracle.registerSplit('val', { labels, classes: 2 });
      const pending = oracle.evaluate(queries);
      // Kill one worker once results are flowing (it is then almost surely inside an evaluation).
      for (let i = 0; i < 200 && (await oracle.store.list('jobs/job-kill/results/')).length < 5; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      const victim = oracle.workers[0];
      victim?.kill('SIGKILL');

      const results = await pending;

      expect(victim?.signalCode).toBe('SIGKILL');
      const direct = new InProcessMetricOracle(mcr);
      await direct.registerSplit('val', { labels, classes: 2 });
      expect(values(results)).toEqual(values(await direct.evaluate(queries)));
      expect((await oracle.store.list('jobs/job-kill/results/')).length).toBe(40);
      // The killed worker's delivery comes back after the visibility timeout and is acknowledged
      // (as a duplicate when the worker died after writing its result).
      let counts = await oracle.queue.counts();
      for (let i = 0; i < 300 && counts.inFlight + counts.visible > 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        counts = await oracle.queue.counts();
      }
      expect(counts).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
      expect((await oracle.store.list('jobs/job-kill/results/')).length).toBe(40);
      const runs = (await readFile(runsLog, 'utf8')).trim().split('\n');
      expect(runs.length).toBeGreaterThanOrEqual(40);
      expect(runs.length).toBeLessThanOrEqual(44); // at most the killed worker's unfinished batch is repeated
    } finally {
      await oracle.close();
    }
  });

  it('refuses an unknown metric before starting any process', async () => {
    const dir = await tempDir('metricopt-unknown-');
    await expect(startLocalQueueOracle({ metric: 'nope', workers: 2, dir })).rejects.toMatchObject({
      code: 'UNKNOWN_METRIC',
    });
    expect(existsSync(join(dir, 'queue'))).toBe(false);
  });
});
