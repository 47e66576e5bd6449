#!/usr/bin/env node
// The TypeScript CMA-ES (shared/method/cma-es.ts) against Python `cmaes` 0.13.1 (run by
// test/helpers/cmaes_reference.py in the pinned venv) on standard functions from
// x0 = (3, ..., 3), sigma0 = 2, same seeds on both sides (different random streams).
// Table 1: evaluations to reach f <= 1e-8 (median [q25, q75]; runs that miss it within the cap
// count as infinite) and the ratio of medians. Table 2: best value at a mid-convergence budget.
// Usage: npm run build && node bench/cmaes-crosscheck.mjs [--seeds 25]
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { minimize } from '../dist/shared/method/cma-es.js';

const { values: args } = parseArgs({ options: { seeds: { type: 'string', default: '25' } } });
const seeds = Array.from({ length: Number(args.seeds) }, (_, i) => i);
const functions = {
  sphere: (x) => x.reduce((s, v) => s + v * v, 0),
  ellipsoid: (x) => x.reduce((s, v, i) => s + 10 ** ((6 * i) / (x.length - 1)) * v * v, 0),
  rosenbrock: (x) => {
    let s = 0;
    for (let i = 0; i < x.length - 1; i++) s += 100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2;
    return s;
  },
};
const target = 1e-8;
const caps = { sphere: 400, ellipsoid: 1200, rosenbrock: 1400 }; // cap = this x d
const mid = {
  sphere: { 2: 200, 4: 450, 8: 900, 16: 1800 },
  ellipsoid: { 2: 400, 4: 900, 8: 2500, 16: 7500 },
  rosenbrock: { 2: 380, 4: 1200, 8: 3000, 16: 9000 },
};
const dims = [2, 4, 8, 16];
const toTarget = Object.keys(functions).flatMap((f) => dims.map((d) => ({ f, d, budget: caps[f] * d, target })));
const atBudget = Object.keys(functions).flatMap((f) => dims.map((d) => ({ f, d, budget: mid[f][d] })));

const python = execFileSync('scripts/python-tools.sh', { encoding: 'utf8' }).trim();
const reference = JSON.parse(
  execFileSync(python, ['test/helpers/cmaes_reference.py'], {
    input: JSON.stringify({ cases: [...toTarget, ...atBudget], seeds, x0: 3, sigma0: 2 }),
    encoding: 'utf8',
  }),
).cases;

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  const i = q * (s.length - 1);
  const lo = s[Math.floor(i)];
  const hi = s[Math.ceil(i)];
  return lo === hi ? lo : lo + (hi - lo) * (i - Math.floor(i));
};
const summary = (xs, fmt) => `${fmt(quantile(xs, 0.5))} [${fmt(quantile(xs, 0.25))}, ${fmt(quantile(xs, 0.75))}]`;
const int = (v) => (Number.isFinite(v) ? String(Math.round(v)) : 'miss');
const exp = (v) => v.toExponential(2);

async function runTs(c) {
  const best = [];
  const hits = [];
  for (const seed of seeds) {
    const r = await minimize(functions[c.f], new Float64Array(c.d).fill(3), 2, { budget: c.budget, seed });
    if (!r.ok) throw r.error;
    best.push(r.value.value);
    const i = r.value.values.findIndex((v) => v <= (c.target ?? Number.NEGATIVE_INFINITY));
    hits.push(i < 0 ? Number.POSITIVE_INFINITY : i + 1);
  }
  return { best, hits };
}

console.log(`Evaluations to reach f <= ${target} (${seeds.length} seeds)\n`);
console.log(
  '| f | d | cap | TypeScript median [q25, q75] | misses | cmaes median [q25, q75] | misses | ratio TS / cmaes |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const [k, c] of toTarget.entries()) {
  const ts = (await runTs(c)).hits;
  const py = reference[k].hits.map((h) => h ?? Number.POSITIVE_INFINITY);
  const miss = (xs) => xs.filter((v) => !Number.isFinite(v)).length;
  const ratio = quantile(ts, 0.5) / quantile(py, 0.5);
  console.log(
    `| ${c.f} | ${c.d} | ${c.budget} | ${summary(ts, int)} | ${miss(ts)} | ${summary(py, int)} | ${miss(py)} | ${ratio.toFixed(2)} |`,
  );
}
console.log(`\nBest value at a mid-convergence budget (${seeds.length} seeds)\n`);
console.log('| f | d | budget | TypeScript median [q25, q75] | cmaes median [q25, q75] | ratio TS / cmaes |');
console.log('|---|---|---|---|---|---|');
for (const [k, c] of atBudget.entries()) {
  const ts = (await runTs(c)).best;
  const py = reference[toTarget.length + k].best;
  const ratio = quantile(ts, 0.5) / quantile(py, 0.5);
  console.log(`| ${c.f} | ${c.d} | ${c.budget} | ${summary(ts, exp)} | ${summary(py, exp)} | ${ratio.toFixed(2)} |`);
}
