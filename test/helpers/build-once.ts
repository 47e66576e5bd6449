import { ensureBuiltCli } from '../jobs/built-cli.js';

/**
 * Global setup of the system and e2e tiers: dist/ (the CLI their child processes run) is
 * rebuilt once, before any file, when a source is newer, instead of by two files at once.
 */
export default function setup(): void {
  ensureBuiltCli();
}
