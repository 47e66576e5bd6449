import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

/**
 * Makes the Docker engine and the CPU image's base ready (scripts/setup-docker.sh); returns why
 * not when it cannot. Under CI=true that is a failure (thrown), never a skip; elsewhere the
 * caller skips with the printed reason.
 */
export function dockerUnavailable(what: string): string | undefined {
  const r = spawnSync('bash', [join(root, 'scripts/setup-docker.sh')], { encoding: 'utf8' });
  process.stdout.write(r.stdout);
  if (r.status === 0) return undefined;
  const reason = `scripts/setup-docker.sh failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`;
  if (process.env.CI === 'true') throw new Error(`${what} under CI=true: ${reason}`);
  console.warn(`SKIPPED ${what}: ${reason}`);
  return reason;
}

/** Builds the CPU training image from gpu-tasks/Dockerfile (scripts/build-train-image.sh; dist/ must be built). */
export function buildTrainImage(tag: string): void {
  execFileSync('bash', [join(root, 'scripts/build-train-image.sh'), tag], { stdio: 'inherit' });
}

export const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
