import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseObservationBinary, parseObservationText } from '../../shared/use-cases/byom/observation-batches.js';
import { runCli } from '../helpers/cli.js';
import { makeWorld, recordTrajectories, toJsonLines } from './synthetic-world.js';

/**
 * Bad observation files: each ends with one clear line naming the line and the reason, and the
 * store (here holding a done fit job and its checkpoint) is left exactly as it was.
 */
const world = makeWorld(4, 3);
const good = recordTrajectories(world, { trajectories: 6, steps: 6, K: 3, seed: 1 });
let dir: string;
let store: string;

async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(root, join(d, e.name)));
    }
  };
  await walk(root);
  return out.sort();
}

async function fitFile(name: string, text: string, extra: string[] = []) {
  const file = join(dir, name);
  await writeFile(file, text);
  return {
    file,
    ...(await runCli([
      'fit',
      '--observations',
      file,
      '--id',
      'bad',
      '--direction',
      'minimize',
      '--store',
      store,
      '--epochs',
      '2',
      '--ensemble',
      '1',
      ...extra,
    ])),
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mo-byom-bad-'));
  store = join(dir, 'store');
  const first = await fitFile('good.jsonl', toJsonLines(good), ['--job', 'good']);
  expect(first.code, first.stderr).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const lines = () => toJsonLines(good).trimEnd().split('\n');

describe('bad observation files leave the store unchanged', () => {
  const cases: [string, () => string, RegExp][] = [
    [
      'wrong d on one line',
      () => {
        const l = lines();
        l[4] = JSON.stringify({ ...JSON.parse(l[4] as string), phi: [1, 2, 3] });
        return l.join('\n');
      },
      /^metricopt: error \[OBSERVATIONS_INVALID\]: .*good-variant\.jsonl: line 5: phi has 3 entries, the first line has 4$/,
    ],
    [
      'NaN',
      () => {
        const l = lines();
        l[2] = (l[2] as string).replace(/"phi":\[[^,]+,/, '"phi":[NaN,');
        return l.join('\n');
      },
      /\[OBSERVATIONS_INVALID\]: .*: line 3: not JSON/,
    ],
    [
      'a number beyond float64 (Infinity)',
      () => {
        const l = lines();
        l[1] = (l[1] as string).replace(/"phi":\[[^,]+,/, '"phi":[1e999,');
        return l.join('\n');
      },
      /\[OBSERVATIONS_INVALID\]: .*: line 2: phi\.0: phi entries must be finite numbers/,
    ],
    [
      'a trajectory with fewer than 2 metric observations',
      () =>
        `${lines().join('\n')}\n${JSON.stringify({ trajectory: 'lonely', step: 0, phi: [0, 0, 0, 0], metric: 0.3 })}\n${JSON.stringify({ trajectory: 'lonely', step: 1, phi: [0, 0, 0, 1] })}`,
      /\[OBSERVATIONS_INSUFFICIENT\]: .*trajectory 'lonely' has 1 metric observation\(s\); the GP needs at least 2/,
    ],
    [
      'duplicate steps',
      () => {
        const l = lines();
        return [...l, l[3]].join('\n');
      },
      /\[OBSERVATIONS_INVALID\]: .*: line 43: trajectory 'run-0' step 3 already appears on line 4/,
    ],
    ['an empty file', () => '\n\n', /\[OBSERVATIONS_EMPTY\]: .*: no observation lines$/],
    [
      'a line that is not an observation',
      () => `${lines().join('\n')}\n{"trajectory":"x","step":-1,"phi":[1,2,3,4]}`,
      /\[OBSERVATIONS_INVALID\]: .*: line 43: step: step must be >= 0/,
    ],
  ];
  for (const [name, text, message] of cases) {
    it(name, async () => {
      const before = await listing(store);
      const out = await fitFile('good-variant.jsonl', text());
      expect(out.code).toBe(1);
      expect(out.stderr.trim().split('\n')).toHaveLength(1);
      expect(out.stderr.trim()).toMatch(message);
      expect(await listing(store)).toEqual(before);
    });
  }

  it('a 100 MB file', async () => {
    const before = await listing(store);
    const file = join(dir, 'huge.jsonl');
    await writeFile(file, toJsonLines(good));
    await truncate(file, 100 * 1024 * 1024);
    const out = await runCli([
      'fit',
      '--observations',
      file,
      '--id',
      'bad',
      '--direction',
      'minimize',
      '--store',
      store,
    ]);
    expect(out.code).toBe(1);
    expect(out.stderr.trim()).toMatch(
      /^metricopt: error \[OBSERVATIONS_TOO_LARGE\]: .*huge\.jsonl: 104857600 bytes is more than --max-bytes 67108864$/,
    );
    expect(await listing(store)).toEqual(before);
  });

  it('every bad line is listed with its number, not only the first', () => {
    const l = lines();
    l[0] = '{"trajectory":"a"}';
    l[9] = 'oops';
    const r = parseObservationText(l.join('\n'), 'f.jsonl');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const issues = (r.error.details as { issues: { line: number; reason: string }[] }).issues;
    expect(issues.map((i) => i.line)).toEqual([1, 10]);
    expect(r.error.message).toMatch(/^f\.jsonl: line 1: .*; line 10: not JSON/);
  });

  it('the binary form: header length, float32 rows, and the same line checks', () => {
    const meta = new TextEncoder().encode('{"trajectory":"t","step":0,"metric":0.5}\n{"trajectory":"t","step":1}\n');
    const body = new Uint8Array(4 + meta.length + 2 * 3 * 4);
    new DataView(body.buffer).setUint32(0, meta.length, true);
    body.set(meta, 4);
    new Float32Array(body.buffer.slice(4 + meta.length)).set([1, 2, 3, 4, 5, 6]);
    const phis = new Float32Array([1, 2, 3, 4, 5, 6]);
    body.set(new Uint8Array(phis.buffer), 4 + meta.length);
    const r = parseObservationBinary(body, 'upload');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.map((o) => [o.step, Array.from(o.phi), o.metric])).toEqual([
      [0, [1, 2, 3], 0.5],
      [1, [4, 5, 6], undefined],
    ]);
    const short = parseObservationBinary(body.subarray(0, body.length - 2), 'upload');
    expect(short.ok).toBe(false);
    if (!short.ok) expect(short.error.message).toMatch(/not a whole number of float32 values/);
    const wrongD = parseObservationBinary(body, 'upload', 4);
    expect(wrongD.ok).toBe(false);
    if (!wrongD.ok) expect(wrongD.error.message).toMatch(/line 1: phi has 3 entries, the stored observations have 4/);
  });
});
