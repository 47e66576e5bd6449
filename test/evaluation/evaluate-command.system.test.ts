import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.js';
import { FsObjectStore } from '../../shared/adapters/object-store.fs.js';
import { LocalQueue } from '../../shared/adapters/queue.local.js';
import { resultKey } from '../../shared/storage/layout.js';
import { messageFor, randomLabels, tempDir } from './fixtures.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => out.push(String(s)) > 0);
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => err.push(String(s)) > 0);
  return { out, err };
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** `--workers N` starts the built CLI (dist/): `npm ci` builds it; build here only if missing. */
beforeAll(() => {
  if (existsSync('dist/cli/commands/evaluate.js')) return;
  spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
});

async function queueWith(keys: string[]) {
  const dir = await tempDir();
  const store = new FsObjectStore(join(dir, 'store'));
  const queue = new LocalQueue(join(dir, 'queue'));
  const labels = randomLabels(50, 1);
  const bodies = [];
  for (const key of keys) {
    const scores = Float32Array.from(labels, (y) => (key === 'a' ? y : 1 - y));
    bodies.push(JSON.stringify(await messageFor(store, { jobId: 'cli', key, evaluator: 'mcr', scores, labels })));
  }
  await queue.send(bodies);
  const value = async (key: string) =>
    JSON.parse(new TextDecoder().decode(await store.get(resultKey('cli', key)))).outcome.value;
  return { store, queue, value };
}

describe('metricopt evaluate', () => {
  it('--list prints every evaluator with its kind and direction', async () => {
    const { out } = capture();
    const code = await main(['evaluate', '--list']);
    expect(code).toBe(0);
    expect(out.join('')).toContain('mcr\tbuiltin\tminimize\n');
    expect(out.join('')).toContain('f1\tbuiltin\tmaximize\n');
  });

  it('fails with USAGE when --store is missing', async () => {
    const { err } = capture();
    const code = await main(['evaluate', '--queue', '/tmp/q']);
    expect(code).toBe(1);
    expect(err.join('')).toBe(
      'metricopt: error [USAGE]: evaluate: --store is required (a folder or s3://bucket/prefix)\n',
    );
  });

  it('fails with USAGE on a webhook list without a secret', async () => {
    const { err } = capture();
    const hooks = '[{"name":"p","url":"https://x.example.com","direction":"maximize"}]';
    const code = await main(['evaluate', '--list', '--webhooks', hooks]);
    expect(code).toBe(1);
    expect(err.join('')).toBe(
      'metricopt: error [USAGE]: --webhooks: METRICOPT_WEBHOOK_SECRET is required when METRICOPT_WEBHOOKS lists any webhook\n',
    );
  });

  it('works a local queue until idle, writing one result per message', async () => {
    const { store, queue, value } = await queueWith(['a', 'b', 'c']);
    capture();

    const code = await main(['evaluate', '--queue', queue.root, '--store', store.root, '--idle-exit-ms', '200']);

    expect(code).toBe(0);
    expect([await value('a'), await value('b'), await value('c')]).toEqual([0, 1, 1]);
    expect(await queue.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });

  it('--workers 2 runs a pool of worker processes that drains the queue', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => (i === 0 ? 'a' : `k${i}`));
    const { store, queue, value } = await queueWith(keys);

    const code = await main([
      'evaluate',
      '--queue',
      queue.root,
      '--store',
      store.root,
      '--workers',
      '2',
      '--idle-exit-ms',
      '500',
      '--quiet',
    ]);

    expect(code).toBe(0);
    expect(await value('a')).toBe(0);
    expect(await Promise.all(keys.slice(1).map(value))).toEqual(Array(19).fill(1));
    const record = JSON.parse(new TextDecoder().decode(await store.get(resultKey('cli', 'a'))));
    expect(record.workerId.endsWith(`:${process.pid}`)).toBe(false);
    expect(await queue.counts()).toEqual({ visible: 0, inFlight: 0, deadLetters: 0 });
  });
});
