import { execFileSync, spawnSync } from 'node:child_process';
import { buildTrainImage, docker, dockerUnavailable } from '../helpers/docker.js';
import { chmodSync, mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';
import { cliPath, ensureBuiltCli } from './built-cli.js';
import { checkpointContent, smallA9a, stateSeq, tinyJob } from './fixtures.js';

/**
 * The CPU training image built from gpu-tasks/Dockerfile and run under Docker: a job against a
 * store folder mounted into the container, `docker stop` (SIGTERM) mid-job, the same container
 * started again, and the result compared with an uninterrupted run's. The engine and the base
 * image come from scripts/setup-docker.sh; under CI=true a missing engine fails the test.
 */
const IMAGE = 'metricopt-train:cpu';
const JOB = 'container-job';

const unavailable = dockerUnavailable('the training container test');

describe.skipIf(unavailable !== undefined)('the training container (docker, CPU image)', () => {
  let dir: string;
  let jobFile: string;
  beforeAll(async () => {
    ensureBuiltCli();
    buildTrainImage(IMAGE);
    const small = await smallA9a(400);
    dir = small.dir;
    // The image runs as uid 1000: the mounted folder must be writable by it.
    chmodSync(dir, 0o777);
    jobFile = join(dir, 'job.json');
    await writeFile(
      jobFile,
      // Enough work (hundreds of journaled states) that `docker stop` lands mid-job: the tiny
      // job alone finishes in well under a second on the float32 pipeline.
      JSON.stringify({
        ...tinyJob(small.file, JOB),
        overrides: {
          pretrain: { epochs: 1 },
          metaTrain: { ensemble: 1, trajectories: { tasks: 240, steps: 20, queries: 3 }, train: { epochs: 2 } },
        },
        checkpoint: { chunkTasks: 2, queryBatch: 3 },
      }),
    );
  }, 600_000);

  it('stops cleanly on docker stop, resumes when started again and ends with the uninterrupted checkpoint', async () => {
    // The uninterrupted reference: the same job by the CLI on this machine (wasm, as in the image).
    const reference = join(dir, 'reference');
    const ref = spawnSync(
      process.execPath,
      [cliPath, 'train', '--job', jobFile, '--store', reference, '--backend', 'wasm'],
      { encoding: 'utf8' },
    );
    expect(ref.status, ref.stderr).toBe(0);

    const store = join(dir, 'store');
    mkdirSync(store, { mode: 0o777 });
    chmodSync(store, 0o777);
    const name = `metricopt-train-test-${process.pid}`;
    spawnSync('docker', ['rm', '-f', name]);
    docker(
      ...['create', '--name', name, '--network', 'none', '-v', `${dir}:${dir}`],
      ...['-e', `METRICOPT_STORE=${store}`, '-e', `METRICOPT_JOB=${jobFile}`, '-e', 'METRICOPT_BACKEND=auto'],
      IMAGE,
    );
    try {
      docker('start', name);
      // Stop it once it has written a few states (mid-trajectories or mid-queries).
      const deadline = Date.now() + 120_000;
      while (stateSeq(store, JOB) < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(stateSeq(store, JOB)).toBeGreaterThanOrEqual(6);
      // Exit code 0, not 137: it stopped within docker's 15-s grace period, before any SIGKILL.
      docker('stop', '-t', '15', name);
      expect(docker('inspect', '-f', '{{.State.ExitCode}}', name)).toBe('0');
      const firstLogs = docker('logs', name);
      expect(firstLogs).toContain('"event":"backend","backend":"wasm"');
      expect(firstLogs).toContain('"event":"stopping","signal":"SIGTERM"');
      expect(firstLogs).toContain('"event":"interrupted"');
      const interrupted = await readJobStatus(new FsObjectStore(store), JOB);
      expect(interrupted.ok && interrupted.value.state).toBe('interrupted');

      // Started again: it resumes and finishes.
      execFileSync('docker', ['start', '-a', name], { encoding: 'utf8', timeout: 300_000 });
      expect(docker('inspect', '-f', '{{.State.ExitCode}}', name)).toBe('0');
      expect(docker('logs', name)).toMatch(/"event":"done".*"resumed":true/);
    } finally {
      spawnSync('docker', ['rm', '-f', name]);
    }
    const fs = new FsObjectStore(store);
    expect((await listCheckpointVersions(fs)).get('tiny-vf')).toEqual([1]);
    const status = await readJobStatus(fs, JOB);
    expect(status.ok && status.value).toMatchObject({
      state: 'done',
      backend: 'wasm',
      tasks: { done: 240, total: 240 },
    });
    expect(await checkpointContent(store)).toEqual(await checkpointContent(reference));
  });
});
