import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { useTestBackend } from '../helpers/backend.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const data = join(root, '..', 'shared', 'data');

/** The interpreter for the PyTorch example: $METRICOPT_PYTHON, else .venv (scripts/setup-torch.sh), else python3. */
function torchPython(): string | undefined {
  const candidates = [process.env.METRICOPT_PYTHON, join(root, '.venv/bin/python'), 'python3'].filter(
    (p): p is string => p !== undefined && (p === 'python3' || existsSync(p)),
  );
  for (const python of candidates) {
    try {
      execFileSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
      return python;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

let dir: string;
let server: RunningServer;

beforeAll(async () => {
  await useTestBackend();
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-torch-'));
  server = await startValueApiServer({
    store: new FsObjectStore(dir),
    port: 0,
    auth: { mode: 'none' },
    maxBodyBytes: 6 * 1024 * 1024,
    maxRows: 64,
    refreshMs: 50,
  });
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the PyTorch bring-your-own-model example', () => {
  it('records its own runs, fits through the service, and compares guided with loss-only on test (skipped without torch)', async (ctx) => {
    const python = torchPython();
    if (python === undefined) {
      console.warn('PyTorch example skipped: no interpreter can import torch (run scripts/setup-torch.sh)');
      ctx.skip();
      return;
    }
    if (!existsSync(join(data, 'a9a.test.libsvm.gz'))) {
      console.warn(`PyTorch example skipped: ${data}/a9a.test.libsvm.gz is missing`);
      ctx.skip();
      return;
    }
    const { stdout, stderr } = await run(
      python,
      [
        join(root, 'clients/python/examples/byom_guided_finetune.py'),
        ...['--url', server.url, '--seeds', '1', '--rows', '4000', '--test-rows', '3000'],
        ...['--trajectories', '16', '--steps', '12', '--queries', '4', '--pretrain-steps', '80'],
      ],
      { timeout: 280_000 },
    );
    const out = JSON.parse(stdout.trim().split('\n').at(-1) as string) as {
      runs: {
        valueFunction: { id: string; version: number; heldOutSpearman: number | null };
        testMcr: Record<string, number>;
      }[];
      guidedMinusLossOnly: { verdict: string };
    };
    expect(out.runs).toHaveLength(1);
    const r = out.runs[0];
    expect(r?.valueFunction).toMatchObject({ id: 'byom-a9a-mcr-s1', version: 1 });
    expect(Object.keys(r?.testMcr ?? {}).sort()).toEqual(['guided', 'lossOnly', 'lossOnlyNatural', 'pretrained']);
    for (const v of Object.values(r?.testMcr ?? {})) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    // Progress while it works (it was silent for minutes per seed): each stage on stderr.
    expect(stderr).toMatch(/seed 1: pre-training 80\/80 steps/);
    expect(stderr).toMatch(/seed 1: recorded 8\/16 trajectories/);
    expect(stderr).toContain('seed 1: fitting the value function through the service');
    expect(stderr).toMatch(/fit job byom-example-s1-\d+: done/);
    // One seed gives no interval: the example says so instead of a verdict.
    expect(out.guidedMinusLossOnly.verdict).toBe('no-interval');
  }, 300_000);
});
