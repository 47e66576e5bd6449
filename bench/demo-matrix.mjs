#!/usr/bin/env node
// Runs `metricopt demo` for each recipe x metric and prints the results as a markdown table
// (test split, mean ± std over seeds, real metric queries), the value function's health and
// the timings. Usage: node bench/demo-matrix.mjs [--metrics mcr,f1,jaccard] [--recipes tuned,paper] [--seeds 5] [-- extra demo flags]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: {
    metrics: { type: 'string', default: 'mcr,f1,jaccard' },
    recipes: { type: 'string', default: 'tuned,paper' },
    seeds: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench/out' },
  },
  allowPositionals: true,
});
const methods = ['ce', 'ce_finetune', 'ce_finetune_dense_eval', 'random_search', 'metricopt'];
const rows = [];
for (const recipe of values.recipes.split(',')) {
  for (const metric of values.metrics.split(',')) {
    const out = join(values.out, `${recipe}-${metric}`);
    mkdirSync(out, { recursive: true });
    const args = [
      'bin/metricopt.mjs',
      'demo',
      '--recipe',
      recipe,
      '--metric',
      metric,
      '--seeds',
      values.seeds,
      '--out',
      out,
      ...positionals,
    ];
    const t0 = performance.now();
    const r = spawnSync('node', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const wall = (performance.now() - t0) / 1000;
    if (r.status !== 0) {
      console.error(`failed: node ${args.join(' ')}`);
      process.exit(1);
    }
    const rep = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    rows.push({ recipe, metric, rep, wall });
  }
}
const f = (v) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));
console.log(
  `| recipe | metric | ${methods.join(' | ')} | VF Spearman | VF MAE (const) | wall s | step ms loss / metricopt |`,
);
console.log(`|${'---|'.repeat(methods.length + 6)}`);
for (const { recipe, metric, rep, wall } of rows) {
  const cells = methods.map((m) => `${f(rep.results[m].mean)} ± ${f(rep.results[m].std)} (${rep.results[m].queries}q)`);
  const vf = rep.valueFunction;
  console.log(
    `| ${recipe} | ${metric} (${rep.direction === 'minimize' ? '↓' : '↑'}) | ${cells.join(' | ')} | ${f(vf.spearman)} | ${f(vf.heldOutMae)} (${f(vf.constantMae)}) | ${wall.toFixed(0)} | ${rep.timings.lossOnlyStepMs.toFixed(2)} / ${rep.timings.metricoptStepMs.toFixed(2)} |`,
  );
}
