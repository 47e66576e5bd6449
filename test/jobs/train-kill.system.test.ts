import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { loadJobState } from '../../shared/use-cases/jobs/train-value-function.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { listCheckpointVersions } from '../../shared/storage/value-function-store.js';
import { Rng } from '../../shared/util/random.js';
import { cliPath, ensureBuiltCli } from './built-cli.js';
import { checkpointContent, smallJobFile, stateSeq } from './fixtures.js';

let dir: string;
let jobFile: string;
const JOB = 'kill-job';

beforeAll(async () => {
  ensureBuiltCli();
  // Checkpoints every 2 tasks and every 3 queries: about 25 state writes for the kills to land between.
  ({ dir, jobFile } = await smallJobFile(JOB));
});

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `metricopt train --job` in a child process; `kill` (optional) is called with the child once it runs. */
function train(store: string, kill?: (child: ChildProcess) => void): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, 'train', '--job', jobFile, '--store', store, '--backend', 'wasm'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b) => (stdout += String(b)));
    child.stderr?.on('data', (b) => (stderr += String(b)));
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
    kill?.(child);
  });
}

describe('metricopt train --job killed and resumed', () => {
  it('ends with the uninterrupted checkpoint bit for bit after SIGTERM and SIGKILL at random points', async () => {
    const reference = join(dir, 'reference');
    const ref = await train(reference);
    expect(ref.stderr).not.toContain('error');
    expect(ref.code).toBe(0);
    const states = stateSeq(reference, JOB);
    expect(states).toBeGreaterThan(20);

    const rng = new Rng(7);
    const store = join(dir, 'killed');
    const kills = { SIGTERM: 0, SIGKILL: 0 };
    let last: Exit | undefined;
    for (let attempt = 0; attempt < 40; attempt++) {
      const signal: NodeJS.Signals = attempt % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
      // Kill once the job has written 1-3 more states (so each kill lands in a different place), plus 0-20 ms.
      const target = stateSeq(store, JOB) + 1 + rng.int(3);
      const delay = rng.int(20);
      last = await train(store, (child) => {
        const poll = setInterval(() => {
          if (stateSeq(store, JOB) < target) return;
          clearInterval(poll);
          setTimeout(() => child.kill(signal), delay);
        }, 3);
        child.on('exit', () => clearInterval(poll));
      });
      if (last.signal === 'SIGTERM') {
        // Only a process already tearing down after finishing the job dies of SIGTERM itself.
        expect(last.stdout).toContain('checkpoint tiny-vf v1 written');
        break;
      }
      if (last.signal === 'SIGKILL') kills.SIGKILL++;
      else if (last.stdout.includes('interrupted')) {
        kills.SIGTERM++;
        // SIGTERM: a final checkpoint and a clean exit (how soon: bench/timing-claims.mjs).
        expect(last.code).toBe(0);
        const status = await readJobStatus(new FsObjectStore(store), JOB);
        expect(status.ok && status.value.state).toBe('interrupted');
      } else {
        expect(last.stderr).not.toContain('error [');
        expect(last.code).toBe(0);
        if (last.stdout.includes('checkpoint tiny-vf')) break;
      }
    }
    expect(kills.SIGTERM).toBeGreaterThanOrEqual(2);
    expect(kills.SIGKILL).toBeGreaterThanOrEqual(2);
    // The last run finished the job, or (killed after its last state write) found it done.
    expect(last?.stdout).toMatch(
      /checkpoint tiny-vf v1 written .*\(job kill-job resumed\)|job kill-job is already done/,
    );

    // Bit for bit, once, with every task and every evaluation counted once.
    expect(await checkpointContent(store)).toEqual(await checkpointContent(reference));
    const fs = new FsObjectStore(store);
    expect((await listCheckpointVersions(fs)).get('tiny-vf')).toEqual([1]);
    const status = await readJobStatus(fs, JOB);
    if (!status.ok) throw status.error;
    expect(status.value).toMatchObject({
      state: 'done',
      tasks: { done: 12, total: 12 },
      evaluations: { total: 36, sent: 36, returned: 36, failed: 0 },
    });
    const state = await loadJobState(fs, JOB);
    const perTask = state.ok ? state.value?.observations.perTask : undefined;
    expect(perTask?.map((o) => o.map(([step]) => step).length)).toEqual(Array(12).fill(3));
    const refState = await loadJobState(new FsObjectStore(reference), JOB);
    expect(perTask).toEqual(refState.ok ? refState.value?.observations.perTask : 'missing');

    // Done: a further run says so and changes nothing.
    const again = await train(store);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('is already done');
    expect((await listCheckpointVersions(fs)).get('tiny-vf')).toEqual([1]);
  });
});
