import { type DemoReport, methodNames } from '../schemas/report.js';

/** The demo's results as a fixed-width text table. */
export function formatResultsTable(r: DemoReport): string {
  const dir = r.direction === 'minimize' ? 'lower is better' : 'higher is better';
  const lines = [
    `${r.dataset} / ${r.metric} (${dir}) / recipe ${r.recipe} / TEST split, mean ± std over ${r.seeds.length} seed(s)`,
    '',
    `${'method'.padEnd(24)} ${'test metric'.padEnd(20)} real queries`,
    `${'-'.repeat(24)} ${'-'.repeat(20)} ${'-'.repeat(12)}`,
  ];
  for (const name of methodNames) {
    const m = r.results[name];
    lines.push(`${name.padEnd(24)} ${`${m.mean.toFixed(4)} ± ${m.std.toFixed(4)}`.padEnd(20)} ${m.queries}`);
  }
  const vf = r.valueFunction;
  const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
  lines.push(
    '',
    `value function ${vf.id} v${vf.version}: held-out MAE ${f(vf.heldOutMae)} (constant ${f(vf.constantMae)}), Spearman ${f(vf.spearman)}${vf.healthy === false ? '  << UNHEALTHY' : ''}`,
    `meta-train: ${r.metaTrain.tasks} tasks, ${r.metaTrain.queriesSent} metric queries (${r.metaTrain.queriesFailed} failed)`,
    `time: pre-train ${r.timings.pretrainS.toFixed(1)} s, meta-train ${r.timings.metaTrainS.toFixed(1)} s, meta-test ${r.timings.metaTestS.toFixed(1)} s; step: loss-only ${r.timings.lossOnlyStepMs.toFixed(3)} ms, metricopt ${r.timings.metricoptStepMs.toFixed(3)} ms (backend ${r.backend})`,
  );
  return lines.join('\n');
}
