import { type DemoReport, methodNames } from '../schemas/report.js';

const f4 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));
const ci = (c: [number, number] | null) => (c ? `[${f4(c[0])}, ${f4(c[1])}]` : '(no interval: 1 replicate)');
const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(4)}`;

/** The demo's results as fixed-width text tables: methods, then metricopt's paired comparisons. */
export function formatResultsTable(r: DemoReport): string {
  const dir = r.direction === 'minimize' ? 'lower is better' : 'higher is better';
  const split = r.reportSplit === 'test' ? 'TEST split' : 'rows held out of TRAINING (test not read)';
  const R = r.replicates.length;
  // Methods neither run nor skipped are not methods of this run (the metric-learning baselines
  // of a metric of the probabilities): no line. The name column fits the longest name shown.
  const shown = methodNames.filter((n) => r.results[n] || r.skipped[n] !== undefined);
  const W = Math.max(24, ...shown.map((n) => n.length));
  const lines = [
    `${r.dataset} / ${r.metric} (${dir}) / recipe ${r.recipe} / ${split}`,
    `${R} replicate(s) x ${r.seeds.length} meta-test seed(s); mean and 95% CI across replicates`,
    '',
    `${'method'.padEnd(W)} ${'mean'.padEnd(8)} ${'95% CI'.padEnd(28)} ${'queries'.padStart(7)} ${'total'.padStart(7)}`,
    `${'-'.repeat(W)} ${'-'.repeat(8)} ${'-'.repeat(28)} ${'-'.repeat(7)} ${'-'.repeat(7)}`,
  ];
  for (const name of shown) {
    const m = r.results[name];
    if (!m) {
      lines.push(`${name.padEnd(W)} skipped: ${r.skipped[name] ?? ''}`);
      continue;
    }
    lines.push(
      `${name.padEnd(W)} ${f4(m.mean).padEnd(8)} ${(m.ci95 ? ci(m.ci95) : '-').padEnd(28)} ${String(m.queries).padStart(7)} ${String(m.totalQueries).padStart(7)}${m.missing > 0 ? `  (${m.missing} run(s) missing: the evaluator failed after its retries)` : ''}`,
    );
  }
  const e = r.metricoptEndpoints;
  lines.push(
    `metricopt endpoints chosen: ${e.path} on its path, ${e.start} at the start, ${e.decision_shift} at the decision-shifted point, ${e.best_observed} at the best meta-training observation${e.online ? `, ${e.online} found by the value-function-guided search with real queries` : ''}`,
  );
  const h = r.headroom;
  if (h) {
    const at = (x: { mean: number; ci95: [number, number] | null } | null) =>
      x ? `${f4(x.mean)}${x.ci95 ? ` ${ci(x.ci95)}` : ''}` : 'n/a';
    lines.push(
      `headroom (${h.label}): best global threshold ${at(h.globalThreshold)}; context rule${h.rule ? ` (${h.rule})` : ''} ${at(h.contextRule)}; metricopt closed ${h.metricoptGapClosed === null ? 'n/a' : `${(100 * h.metricoptGapClosed).toFixed(0)} %`} of the gap from ${h.bestBaseline ?? 'n/a'} to the ${h.oracle ?? 'oracle'}`,
    );
  }
  lines.push(
    '',
    'metricopt minus baseline (natural direction), paired over replicates:',
    `${'baseline'.padEnd(W)} ${'diff'.padEnd(8)} ${'95% CI'.padEnd(28)} verdict`,
    `${'-'.repeat(W)} ${'-'.repeat(8)} ${'-'.repeat(28)} ${'-'.repeat(11)}`,
  );
  for (const name of methodNames) {
    const c = r.comparisons[name];
    if (!c) continue;
    lines.push(`${name.padEnd(W)} ${signed(c.diff).padEnd(8)} ${ci(c.ci95).padEnd(28)} ${c.verdict}`);
  }
  lines.push('');
  for (const rep of r.replicates) {
    const vf = rep.valueFunction;
    const t = rep.timings;
    lines.push(
      `replicate ${rep.index} (seed ${rep.seed}): value function ${vf.id} v${vf.version}, held-out MAE ${f4(vf.heldOutMae)} (constant ${f4(vf.constantMae)}), Spearman ${f4(vf.spearman)}${vf.healthy === false ? '  << UNHEALTHY' : ''}; ${rep.metaTrain.tasks} tasks, ${rep.metaTrain.queriesSent} meta-training queries (${rep.metaTrain.queriesFailed} failed); pre-train ${t.pretrainS.toFixed(1)} s, meta-train ${t.metaTrainS.toFixed(1)} s (trajectories ${t.trajectoriesS.toFixed(1)}, metric queries ${t.queriesS.toFixed(1)}, value function ${t.fitS.toFixed(1)}), meta-test ${t.metaTestS.toFixed(1)} s; step loss-only ${t.lossOnlyStepMs.toFixed(3)} ms, metricopt ${t.metricoptStepMs.toFixed(3)} ms`,
    );
  }
  lines.push(`backend ${r.backend}`);
  return lines.join('\n');
}
