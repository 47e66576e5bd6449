import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../shared/util/api-key-hash.js';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import type { FitLauncher } from '../../shared/ports/fit.port.js';
import { jobStatus, writeJobStatus } from '../../shared/storage/job-documents.js';
import { uploadObservations } from '../../shared/use-cases/byom/fit-job-api.js';
import { SECRET_KEY, tempStore } from './fixtures.js';
import { createMinimalFitJob } from '../helpers/fit-job.js';

/**
 * Issue 23: schemathesis (pinned in scripts/python-tools.txt) against the /openapi.json of a
 * local server, auth off and on (an API key with both scopes): every operation, all phases it
 * can run without links (examples, coverage, fuzzing), valid and invalid requests. It fails on
 * any 5xx, any answer its schema does not describe (status, content type, headers, body), and
 * any request the schema forbids that the server accepts (negative_data_rejection).
 *
 * Not checked: positive_data_acceptance (a request the schema allows must be accepted). The
 * schema cannot know a value function's d (phi must have d entries), and observation and
 * prediction bodies are checked line by line against the job; the server refuses those with
 * coded 400/409 answers that the schema lists.
 */
const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const EXAMPLES = 8;
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
  'negative_data_rejection',
];

/** Fit jobs are queued to nothing: a fit never runs during the fuzzing. */
const queueToNothing: FitLauncher = { via: 'queue', launch: async () => undefined };

let python: string;
let fixture: Awaited<ReturnType<typeof tempStore>>;
let reports: string;
beforeAll(async () => {
  python = execFileSync(join(root, 'scripts/python-tools.sh'), { encoding: 'utf8' }).trim();
  fixture = await tempStore([
    { id: 'small', d: 4, seed: 1, metric: { name: 'mcr', direction: 'minimize' } },
    { id: 'a9a-mcr-tuned', d: 16, seed: 2, metric: { name: 'mcr', direction: 'minimize' } },
  ]);
  // Ids that exist, so that the operations reach past 404 (schemathesis.toml below): a fit job
  // with observations (start queues it to nothing), and a training job whose runner is gone.
  await createMinimalFitJob(fixture.store, 'fuzz-fit', 'mcr');
  const phi = (t: number, s: number) => Float32Array.from({ length: 4 }, (_, j) => t + s / 10 + j);
  const lines = ['a', 'b', 'c'].flatMap((t, i) =>
    [0, 1, 2].map((s) => ({ trajectory: t, step: s, phi: phi(i, s), metric: i + s })),
  );
  const uploaded = await uploadObservations(fixture.store, 'fuzz-fit', lines, 'fixture');
  if (!uploaded.ok) throw uploaded.error;
  const past = new Date(Date.now() - 3_600_000).toISOString();
  await writeJobStatus(fixture.store, {
    ...jobStatus({ jobId: 'fuzz-train', backend: 'wasm', startedAt: past }, { stage: 'trajectories' }),
    leaseExpiresAt: past,
  });
  reports = await mkdtemp(join(tmpdir(), 'mo-schemathesis-'));
  await writeFile(
    join(reports, 'schemathesis.toml'),
    [
      '[[operations]]',
      "include-path-regex = '^/v1/value-functions/[{]id[}]'",
      'parameters = { "path.id" = "small" }',
      '[[operations]]',
      "include-path-regex = '^/v1/fit-jobs/[{]id[}]'",
      'parameters = { "path.id" = "fuzz-fit" }',
      '[[operations]]',
      "include-path-regex = '^/v1/jobs/[{]id[}]'",
      'parameters = { "path.id" = "fuzz-train" }',
      '',
    ].join('\n'),
  );
}, 900_000);
afterAll(async () => {
  await fixture.cleanup();
  await rm(reports, { recursive: true, force: true });
});

describe('schemathesis against /openapi.json', () => {
  it.each([
    ['off', undefined],
    ['on (API key)', SECRET_KEY],
  ])(
    'finds no 5xx, no answer outside the schema and no forbidden request accepted (auth %s)',
    { timeout: 900_000 },
    async (_, key) => {
      const server: RunningServer = await startValueApiServer({
        store: fixture.store,
        port: 0,
        auth: key === undefined ? { mode: 'none' } : { mode: 'api-key', hashes: [hashApiKey(key)] },
        maxBodyBytes: 1 << 20,
        maxRows: 64,
        refreshMs: 1000,
        fitLauncher: queueToNothing,
        log: () => undefined,
      });
      const junit = join(reports, `${key === undefined ? 'off' : 'on'}.xml`);
      try {
        const st = join(python, '..', 'st');
        const result = await run(
          st,
          [
            ...['--config-file', join(reports, 'schemathesis.toml'), 'run'],
            `${server.url}/openapi.json`,
            ...['--checks', CHECKS.join(','), '--max-examples', String(EXAMPLES), '--seed', '23'],
            ...['--phases', 'examples,coverage,fuzzing', '--workers', '1', '--no-color', '--request-timeout', '30'],
            ...['--generation-database', 'none', '--report', 'junit', '--report-junit-path', junit],
            ...(key === undefined ? [] : ['-H', `Authorization: Bearer ${key}`]),
          ],
          { cwd: reports, timeout: 600_000, maxBuffer: 64 << 20, env: { ...process.env, SCHEMATHESIS_HOOKS: '' } },
        ).then(
          (r) => ({ code: 0, out: r.stdout + r.stderr }),
          (e: { code?: number; stdout?: string; stderr?: string }) => ({
            code: e.code ?? -1,
            out: `${e.stdout ?? ''}${e.stderr ?? ''}`,
          }),
        );
        // The summary names every failed check; the whole output when the run failed.
        expect(result.code, result.out.slice(-20_000)).toBe(0);
        const xml = await readFile(junit, 'utf8');
        const cases = Number(/<testsuite [^>]*tests="(\d+)"/.exec(xml)?.[1]);
        // Every operation of the document was exercised (15 routes, /openapi.json hidden).
        expect(cases).toBeGreaterThanOrEqual(14);
        // Every case it generated passed (the count is printed twice only when they agree).
        expect(result.out).toMatch(/(\d+) generated, \1 passed/);
      } finally {
        await server.close();
      }
    },
  );
});
