#!/usr/bin/env node
// The efficacy matrix: `metricopt demo --replicates R` on every (dataset, metric) cell, then per
// cell every method's mean and 95% CI, metricopt's paired difference against the best baseline
// and against the best loss-only baseline, and the verdicts; a markdown table on stdout (and in
// OUT/efficacy.md) and an SVG heat map of the verdicts.
// Cells run up to --jobs at a time (default and at most the core count), each demo with
// --threads = cores / jobs; all share one run cache (--run-cache OUT/run-cache), and cells are
// ordered metric by metric so that a data set's backbone and trajectories, the same for every
// metric, are computed by its first cell and reused by the others.
// Usage: npm run build && node bench/efficacy-matrix.mjs [--suite default|context] [--replicates 5] [--jobs N]
//          [--cells a9a:mcr,digits:top-1-accuracy] [--svg bench/efficacy-matrix.svg] [--out bench/out/efficacy]
//          [-- extra demo flags, e.g. --tasks 300]
// --suite context: the metrics of who is scored (issue 19): instance cost on a9a, ijcnn1 and
// phishing, group-balanced error on a9a by sex, mcr with one group's training labels flipped
// (a9a-noise), value captured in the top 5 % (a9a); default SVG bench/efficacy-matrix-context.svg.
// Every cell reports the headroom (optimistic oracles on the reported rows) and the share of the
// gap between the best baseline and the oracle that metricopt closed; and, since a peer that
// searches phi on the metric (cma_es, random_search_total) can itself reach the oracle, the share
// of the headroom above the best fixed rule (a loss-only baseline, one threshold, the prior
// correction: no metric search) that metricopt and cma_es captured.
// Cells already in OUT (same flags) are reused, so an interrupted run can be continued.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

// The report's method names, from the build (npm run build first).
const fixedRules = [
  'ce',
  'ce_finetune',
  'ce_finetune_natural',
  'ce_finetune_dense_eval',
  'threshold',
  'prior_correction',
];
const { methodNames, lossOnlyBaselines: lossOnly } = await import(
  new URL('../dist/shared/schemas/report.js', import.meta.url).href
);

const datasets = {
  a9a: ['--dataset', 'a9a'],
  w8a: ['--dataset', '../shared/data/w8a.train.libsvm.gz'],
  ijcnn1: ['--dataset', '../shared/data/ijcnn1.train.libsvm.gz'],
  phishing: ['--dataset', '../shared/data/phishing.libsvm.gz'],
  mushrooms: ['--dataset', '../shared/data/mushrooms.libsvm.gz'],
  digits: ['--dataset', 'digits'],
  // a9a with the context column `group` = column 71 ("female"), and that group's positive
  // training labels flipped at rate 0.5 (validation and test clean).
  'a9a-group': ['--dataset', 'a9a', '--group-feature', '71'],
  'a9a-noise': ['--dataset', 'a9a', '--group-feature', '71', '--label-noise', '0.5'],
};
/** Per-dataset flags after the shared ones (the ConvNet's steps cost about 40x the MLP's). */
const datasetFlags = { digits: ['--tasks', '80'] };
const binaryMetrics = ['mcr', 'f1', 'aucpr', 'balanced-error'];
const defaultCells = [
  ...['a9a', 'w8a', 'ijcnn1', 'phishing', 'mushrooms'].flatMap((d) => binaryMetrics.map((m) => `${d}:${m}`)),
  'digits:top-1-accuracy',
  'digits:top-3-accuracy',
];

const contextCells = [
  'a9a:instance-cost',
  'ijcnn1:instance-cost',
  'phishing:instance-cost',
  'a9a-group:group-balanced-error',
  'a9a-noise:mcr',
  'a9a:top5-value',
];

const { values, positionals } = parseArgs({
  options: {
    suite: { type: 'string', default: 'default' },
    replicates: { type: 'string', default: '5' },
    jobs: { type: 'string', default: String(availableParallelism()) },
    cells: { type: 'string' },
    out: { type: 'string' },
    svg: { type: 'string' },
  },
  allowPositionals: true,
});
if (!['default', 'context'].includes(values.suite)) throw new Error(`unknown --suite '${values.suite}'`);
const context = values.suite === 'context';
values.cells ??= (context ? contextCells : defaultCells).join(',');
values.out ??= context ? 'bench/out/efficacy-context' : 'bench/out/efficacy';
values.svg ??= context ? 'bench/efficacy-matrix-context.svg' : 'bench/efficacy-matrix.svg';
mkdirSync(values.out, { recursive: true });
const cores = availableParallelism();
const jobs = Math.min(cores, Math.max(1, Number(values.jobs)));
const threads = String(Math.max(1, Math.floor(cores / jobs)));
const listed = values.cells.split(',').map((c) => {
  const [dataset, metric] = c.split(':');
  if (!datasets[dataset]) throw new Error(`unknown dataset '${dataset}' in --cells`);
  return { dataset, metric };
});
// Run order: the k-th metric of every data set before the (k+1)-th (reuse through the run cache);
// the table keeps the listed order.
const rank = (c) => listed.filter((x) => x.dataset === c.dataset).indexOf(c);
const order = listed.map((_c, i) => i).sort((a, b) => rank(listed[a]) - rank(listed[b]) || a - b);
const cells = listed;
const flagsKey = JSON.stringify([values.replicates, ...positionals]);

function runCell({ dataset, metric }) {
  const file = join(values.out, `${dataset}-${metric}.json`);
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    if (saved.flagsKey === flagsKey) return Promise.resolve(saved);
  }
  const args = [
    'bin/metricopt.mjs',
    'demo',
    ...datasets[dataset],
    '--metric',
    metric,
    '--replicates',
    values.replicates,
    '--out',
    join(values.out, `${dataset}-${metric}`),
    '--json',
    '--run-cache',
    join(values.out, 'run-cache'),
    '--threads',
    threads,
    ...positionals,
    ...(datasetFlags[dataset] ?? []),
  ];
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('node', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`failed (${code}): node ${args.join(' ')}`));
      const saved = { flagsKey, wallS: (performance.now() - t0) / 1000, report: JSON.parse(stdout) };
      writeFileSync(file, JSON.stringify(saved));
      console.error(`${dataset}:${metric} done in ${saved.wallS.toFixed(0)} s`);
      resolve(saved);
    });
  });
}

const t0 = performance.now();
const done = new Array(cells.length);
let next = 0;
await Promise.all(
  Array.from({ length: jobs }, async () => {
    while (next < order.length) {
      const i = order[next++];
      done[i] = await runCell(cells[i]);
    }
  }),
);
const totalS = (performance.now() - t0) / 1000;

/** The baseline with the best mean among `names` (natural direction). */
function bestOf(rep, names) {
  const sign = rep.direction === 'minimize' ? 1 : -1;
  return names
    .filter((n) => rep.results[n])
    .reduce((a, b) => (a === null || sign * rep.results[b].mean < sign * rep.results[a].mean ? b : a), null);
}
const f = (v) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));
const ci = (c) => (c ? `[${f(c[0])}, ${f(c[1])}]` : 'n/a');
const summary = done.map(({ report: rep, wallS }, i) => {
  const baselines = Object.keys(rep.comparisons);
  const best = bestOf(rep, baselines);
  const bestLoss = bestOf(rep, lossOnly);
  const cell = cells[i].dataset;
  return { rep, cell, wallS, best, bestLoss, vsBest: rep.comparisons[best], vsLoss: rep.comparisons[bestLoss] };
});

// Methods no cell ran or skipped (the metric-learning baselines of probability metrics) get no column.
const methods = methodNames.filter((m) => summary.some((s) => s.rep.results[m] || s.rep.skipped[m] !== undefined));
const lines = [];
lines.push(
  `| cell | ${methods.join(' | ')} | metricopt - best baseline (which) | verdict | metricopt - best loss-only (which) | verdict | headroom: global threshold | headroom: context rule | gap closed | headroom above the best fixed rule captured: metricopt / cma_es | VF Spearman (mean) | wall s |`,
);
lines.push(`|${'---|'.repeat(methods.length + 11)}`);
for (const s of summary) {
  const r = s.rep;
  const cellsText = methods.map((m) => (r.results[m] ? `${f(r.results[m].mean)} ${ci(r.results[m].ci95)}` : `skipped`));
  const sp = r.replicates.map((x) => x.valueFunction.spearman).filter((x) => x !== null);
  const spMean = sp.length ? sp.reduce((a, b) => a + b, 0) / sp.length : null;
  const h = r.headroom;
  const oracle = (x) => (x ? `${f(x.mean)} ${ci(x.ci95)}` : 'n/a');
  const closed = h?.metricoptGapClosed;
  const captured = capturedText(r);
  lines.push(
    `| ${s.cell} ${r.metric} (${r.direction === 'minimize' ? '↓' : '↑'}) | ${cellsText.join(' | ')} | ${s.vsBest.diff >= 0 ? '+' : ''}${f(s.vsBest.diff)} ${ci(s.vsBest.ci95)} (${s.best}) | **${s.vsBest.verdict}** | ${s.vsLoss.diff >= 0 ? '+' : ''}${f(s.vsLoss.diff)} ${ci(s.vsLoss.ci95)} (${s.bestLoss}) | **${s.vsLoss.verdict}** | ${oracle(h?.globalThreshold)} | ${oracle(h?.contextRule)}${h?.rule ? ` (${h.rule})` : ''} | ${closed === null || closed === undefined ? 'n/a' : `${(100 * closed).toFixed(0)} % of ${h.bestBaseline} -> ${h.oracle}`} | ${captured} | ${f(spMean)} | ${s.wallS.toFixed(0)} |`,
  );
}

/** Share of the headroom from the best fixed rule (no metric search) to the context oracle that metricopt and cma_es captured. */
function capturedText(r) {
  const oracle = r.headroom?.contextRule?.mean;
  const fixed = bestOf(r, fixedRules);
  if (oracle === undefined || fixed === null) return 'n/a';
  const sign = r.direction === 'minimize' ? 1 : -1;
  const gap = sign * (r.results[fixed].mean - oracle);
  if (!(gap >= 1e-3)) return `no headroom above ${fixed}`;
  const share = (m) =>
    r.results[m] ? `${((100 * sign * (r.results[fixed].mean - r.results[m].mean)) / gap).toFixed(0)} %` : 'n/a';
  return `${share('metricopt')} / ${share('cma_es')} (of ${fixed} -> oracle)`;
}
const count = (key) =>
  ['better', 'tie', 'worse', 'no-interval']
    .map((v) => `${summary.filter((s) => s[key].verdict === v).length} ${v}`)
    .join(', ');
lines.push('');
lines.push(
  `against the best loss-only baseline: ${count('vsLoss')}; against the best baseline of all: ${count('vsBest')}`,
);
lines.push(
  `${cells.length} cells x ${values.replicates} replicates, demo flags: ${positionals.join(' ') || '(defaults)'}; per dataset: ${JSON.stringify(datasetFlags)}; total ${(totalS / 60).toFixed(1)} min with ${jobs} job(s) x ${threads} thread(s)`,
);
const md = lines.join('\n');
writeFileSync(join(values.out, 'efficacy.md'), `${md}\n`);
process.stdout.write(`${md}\n`);
writeFileSync(values.svg, heatMap(summary));

/** Two grids (datasets x metrics): verdict against the best loss-only baseline, and against the best baseline. */
function heatMap(rows) {
  const colors = { better: '#2ca02c', tie: '#c7c7c7', worse: '#d62728', 'no-interval': '#9ecae1' };
  const ds = [...new Set(rows.map((s) => s.cell))];
  const ms = [...new Set(rows.map((s) => s.rep.metric))];
  const cw = 150;
  const ch = 46;
  const left = 150;
  const top = 90;
  const gap = 60;
  const gridW = ms.length * cw;
  const W = left + 2 * gridW + gap + 20;
  const H = top + ds.length * ch + 70;
  const esc = (t) => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>MetricOpt efficacy matrix: verdicts of metricopt against the best loss-only baseline and the best baseline</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">MetricOpt efficacy: paired difference over ${esc(values.replicates)} replicates (95% CI), test split</text>`,
  ];
  [
    ['vsLoss', 'against the best loss-only baseline', 'bestLoss'],
    ['vsBest', 'against the best baseline of all', 'best'],
  ].forEach(([key, title, which], g) => {
    const x0 = left + g * (gridW + gap);
    out.push(`<text x="${x0 + gridW / 2}" y="${top - 40}" text-anchor="middle" font-size="13">${esc(title)}</text>`);
    ms.forEach((m, j) =>
      out.push(`<text x="${x0 + j * cw + cw / 2}" y="${top - 10}" text-anchor="middle">${esc(m)}</text>`),
    );
    ds.forEach((d, i) => {
      if (g === 0)
        out.push(`<text x="${left - 10}" y="${top + i * ch + ch / 2 + 4}" text-anchor="end">${esc(d)}</text>`);
      ms.forEach((m, j) => {
        const s = rows.find((x) => x.cell === d && x.rep.metric === m);
        const x = x0 + j * cw;
        const y = top + i * ch;
        if (!s) {
          out.push(`<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="#f7f7f7"/>`);
          return;
        }
        const c = s[key];
        out.push(`<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="${colors[c.verdict]}"/>`);
        out.push(
          `<text x="${x + cw / 2}" y="${y + 18}" text-anchor="middle">${c.verdict} ${c.diff >= 0 ? '+' : ''}${c.diff.toFixed(4)}</text>`,
        );
        out.push(`<text x="${x + cw / 2}" y="${y + 32}" text-anchor="middle" font-size="9">vs ${esc(s[which])}</text>`);
        const closed = s.rep.headroom?.metricoptGapClosed;
        if (closed !== null && closed !== undefined) {
          out.push(
            `<text x="${x + cw / 2}" y="${y + 42}" text-anchor="middle" font-size="9">gap to oracle closed: ${(100 * closed).toFixed(0)} %</text>`,
          );
        }
      });
    });
  });
  const ly = H - 30;
  Object.entries(colors).forEach(([v, c], k) => {
    out.push(`<rect x="${left + k * 130}" y="${ly - 11}" width="14" height="14" fill="${c}"/>`);
    out.push(
      `<text x="${left + k * 130 + 20}" y="${ly}">${v === 'better' ? 'metricopt better' : v === 'worse' ? 'metricopt worse' : v}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}
