import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';

/** What the integration tests get through `inject('localstack')`. */
export type LocalStackInfo =
  | {
      available: true;
      endpoint: string;
      version: string;
      /** The emulator's process when scripts/localstack.sh started it; absent for your own emulator. */
      pid?: number;
    }
  | { available: false; reason: string };

declare module 'vitest' {
  export interface ProvidedContext {
    localstack: LocalStackInfo;
  }
}

const script = resolve(import.meta.dirname, '../../scripts/localstack.sh');
const root = resolve(import.meta.dirname, '../..');
const ci = /^(1|true)$/i.test(process.env.CI ?? '');

/**
 * Starts LocalStack (or finds the user's at AWS_ENDPOINT_URL) once for every file in
 * test/integration/, hands its endpoint to the tests, and stops it at the end. Without an
 * emulator the tests are skipped, saying why; under CI=true that is a failure instead.
 */
export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  const run = mkdtempSync(join(tmpdir(), 'metricopt-localstack-'));
  const started = spawnSync(script, ['start', run], { stdio: ['ignore', 'inherit', 'inherit'] });
  const unavailable = (reason: string) => {
    rmSync(run, { recursive: true, force: true });
    if (ci) throw new Error(`integration tests: ${reason}; under CI=true this is a failure`);
    console.warn(`\nintegration tests SKIPPED: ${reason}\n`);
    project.provide('localstack', { available: false, reason });
    return undefined;
  };
  if (started.status !== 0) {
    return unavailable(
      `no LocalStack emulator (scripts/localstack.sh start exited ${started.status ?? started.signal})`,
    );
  }
  const endpoint = readFileSync(join(run, 'endpoint'), 'utf8').trim();
  const pidFile = join(run, 'pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined;
  const stop = () => {
    spawnSync(script, ['stop', run], { stdio: 'inherit' });
    // The emulator's log of the last run stays for a look after a failure.
    const log = join(run, 'localstack.log');
    if (existsSync(log)) {
      mkdirSync(join(root, '.cache/localstack'), { recursive: true });
      copyFileSync(log, join(root, '.cache/localstack/last-run.log'));
    }
    rmSync(run, { recursive: true, force: true });
  };
  let version: string;
  try {
    const health = (await (await fetch(`${endpoint}/_localstack/health`)).json()) as { version?: string };
    version = health.version ?? 'unknown';
  } catch (e) {
    stop();
    return unavailable(`the emulator at ${endpoint} does not answer /_localstack/health (${e})`);
  }
  const whose = pid === undefined ? 'your own, from AWS_ENDPOINT_URL' : `started by scripts/localstack.sh, pid ${pid}`;
  console.log(`integration tests: LocalStack ${version} at ${endpoint} (${whose})`);
  project.provide('localstack', { available: true, endpoint, version, ...(pid === undefined ? {} : { pid }) });
  return stop;
}
