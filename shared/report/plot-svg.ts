import { type DemoReport, methodNames } from '../schemas/report.js';

/** One seed's curves along the two fine-tuning paths (meta-test records them). */
export interface Curves {
  /** Validation metric (natural direction) at each step. */
  ceFinetuneMetric: number[];
  metricoptMetric: number[];
  /** Mean cross-entropy on the validation split at each step. */
  ceFinetuneLoss: number[];
  metricoptLoss: number[];
  /** Value-function prediction (natural direction) along the metricopt path. */
  metricoptPredicted: number[];
}

/** What the endpoint panel of plotTrajectoriesSvg shows: the report's test results. */
export type EndpointResults = Pick<DemoReport, 'direction' | 'results' | 'reportSplit'>;

/**
 * A dependency-free SVG plot of the meta-test trajectories: validation metric (left) and
 * validation cross-entropy (right) per step, loss-only fine-tuning vs MetricOpt, mean over
 * seeds (thick) and each seed (thin). Given the report's results, a panel below shows where
 * each method ended on the reported split: MetricOpt, the strongest baselines (most of them
 * have no trajectory: a threshold, a prior shift, a best observation) and ce_finetune.
 */
export function plotTrajectoriesSvg(
  curves: Curves[],
  metric: string,
  title: string,
  endpoints?: EndpointResults,
): string {
  const W = 980;
  const rows = endpoints === undefined ? [] : endpointRows(endpoints);
  const H = 450 + (rows.length > 0 ? 100 + rows.length * 22 : 0);
  const panels = [
    { key: 'metric' as const, label: `validation ${metric}`, x0: 70 },
    { key: 'loss' as const, label: 'validation cross-entropy', x0: 560 },
  ];
  const pw = 380;
  const ph = 300;
  const y0 = 60;
  const series = (c: Curves, key: 'metric' | 'loss', which: 'ce' | 'mo') =>
    key === 'metric'
      ? which === 'ce'
        ? c.ceFinetuneMetric
        : c.metricoptMetric
      : which === 'ce'
        ? c.ceFinetuneLoss
        : c.metricoptLoss;
  const colors = { ce: '#d62728', mo: '#1f77b4' };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
  for (const p of panels) {
    const all = curves.flatMap((c) => [...series(c, p.key, 'ce'), ...series(c, p.key, 'mo')]).filter(Number.isFinite);
    if (all.length === 0) continue;
    let lo = Math.min(...all);
    let hi = Math.max(...all);
    if (hi - lo < 1e-9) {
      lo -= 0.5;
      hi += 0.5;
    }
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
    const steps = Math.max(...curves.map((c) => c.ceFinetuneMetric.length)) - 1;
    const sx = (t: number) => p.x0 + (t / Math.max(1, steps)) * pw;
    const sy = (v: number) => y0 + ph - ((v - lo) / (hi - lo)) * ph;
    parts.push(`<rect x="${p.x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
    parts.push(`<text x="${p.x0 + pw / 2}" y="${y0 - 8}" text-anchor="middle">${escapeXml(p.label)}</text>`);
    parts.push(`<text x="${p.x0 + pw / 2}" y="${y0 + ph + 32}" text-anchor="middle">meta-test step</text>`);
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      parts.push(`<text x="${p.x0 - 6}" y="${sy(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
      parts.push(`<line x1="${p.x0}" x2="${p.x0 + pw}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/>`);
      const t = Math.round((steps * i) / 4);
      parts.push(`<text x="${sx(t)}" y="${y0 + ph + 16}" text-anchor="middle">${t}</text>`);
    }
    for (const which of ['ce', 'mo'] as const) {
      const color = colors[which];
      for (const c of curves) parts.push(polyline(series(c, p.key, which), sx, sy, color, 0.8, 0.3));
      const meanSeries = Array.from({ length: steps + 1 }, (_, t) => {
        const vals = curves.map((c) => series(c, p.key, which)[t] as number).filter(Number.isFinite);
        return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : Number.NaN;
      });
      parts.push(polyline(meanSeries, sx, sy, color, 2.5, 1));
    }
  }
  const ly = 450 - 16;
  parts.push(`<line x1="70" x2="100" y1="${ly}" y2="${ly}" stroke="${colors.ce}" stroke-width="3"/>`);
  parts.push(`<text x="106" y="${ly + 4}">loss-only fine-tuning (ce_finetune)</text>`);
  parts.push(`<line x1="340" x2="370" y1="${ly}" y2="${ly}" stroke="${colors.mo}" stroke-width="3"/>`);
  parts.push(`<text x="376" y="${ly + 4}">MetricOpt (value-function guided)</text>`);
  parts.push(`<text x="640" y="${ly + 4}" fill="#666">thin: each seed; thick: mean</text>`);
  if (endpoints !== undefined && rows.length > 0) parts.push(...endpointPanel(rows, endpoints, metric, 480));
  parts.push('</svg>');
  return parts.join('\n');
}

interface EndpointRow {
  name: string;
  mean: number;
  ci: [number, number] | null;
}

/** MetricOpt, the three strongest baselines and ce_finetune (the red curves), best first. */
function endpointRows(e: EndpointResults): EndpointRow[] {
  const sign = e.direction === 'minimize' ? 1 : -1;
  const all = methodNames
    .map((name) => ({ name, r: e.results[name] }))
    .filter((x): x is { name: (typeof methodNames)[number]; r: NonNullable<typeof x.r> } => x.r !== undefined)
    .map(({ name, r }) => ({ name, mean: r.mean, ci: r.ci95 }))
    .sort((a, b) => sign * (a.mean - b.mean));
  const strongest = all.filter((x) => x.name !== 'metricopt').slice(0, 3);
  return all.filter((x) => x.name === 'metricopt' || x.name === 'ce_finetune' || strongest.includes(x));
}

function endpointPanel(rows: EndpointRow[], e: EndpointResults, metric: string, top: number): string[] {
  const x0 = 250;
  const pw = 560;
  const vals = rows.flatMap((r) => [r.mean, ...(r.ci ?? [])]).filter(Number.isFinite);
  let lo = Math.min(...vals);
  let hi = Math.max(...vals);
  if (hi - lo < 1e-9) {
    lo -= 0.005;
    hi += 0.005;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const sx = (v: number) => x0 + ((v - lo) / (hi - lo)) * pw;
  const split = e.reportSplit === 'test' ? 'test' : 'train hold-out';
  const better = e.direction === 'minimize' ? 'left' : 'right';
  const parts = [
    `<text x="${W_CENTER}" y="${top}" text-anchor="middle" font-size="14">${escapeXml(`${split} ${metric} where each method ended (mean, 95% CI across replicates when there are several; better to the ${better})`)}</text>`,
    `<text x="${W_CENTER}" y="${top + 18}" text-anchor="middle" fill="#555">MetricOpt, the three strongest baselines and ce_finetune (red above); most baselines have no trajectory to draw</text>`,
  ];
  const y0 = top + 36;
  const axisY = y0 + rows.length * 22 + 4;
  for (const t of niceTicks(lo, hi)) {
    parts.push(`<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${y0}" y2="${axisY}" stroke="#eee"/>`);
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${axisY + 14}" text-anchor="middle">${tickLabel(t, lo, hi)}</text>`);
  }
  rows.forEach((r, i) => {
    const y = y0 + i * 22 + 11;
    const color = r.name === 'metricopt' ? '#1f77b4' : r.name === 'ce_finetune' ? '#d62728' : '#444';
    parts.push(
      `<text x="${x0 - 10}" y="${y + 4}" text-anchor="end"${r.name === 'metricopt' ? ' font-weight="bold"' : ''}>${r.name}</text>`,
    );
    if (r.ci) {
      parts.push(
        `<line x1="${sx(r.ci[0]).toFixed(1)}" x2="${sx(r.ci[1]).toFixed(1)}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2"/>`,
      );
    }
    parts.push(`<circle cx="${sx(r.mean).toFixed(1)}" cy="${y}" r="4.5" fill="${color}"/>`);
    parts.push(`<text x="${x0 + pw + 12}" y="${y + 4}">${r.mean.toFixed(4)}</text>`);
  });
  parts.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${axisY}" y2="${axisY}" stroke="#999"/>`);
  return parts;
}

const W_CENTER = 490;

/** About `target` round tick values (steps of 1, 2 or 5 times a power of ten) within [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  const step = tickStep(lo, hi, target);
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step); k * step <= hi + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

function tickStep(lo: number, hi: number, target: number): number {
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

/** A tick's label with as many decimals as its step needs. */
function tickLabel(v: number, lo: number, hi: number, target = 5, signed = false): string {
  if (v === 0) return '0';
  const decimals = Math.max(0, -Math.floor(Math.log10(tickStep(lo, hi, target)) + 1e-9));
  const text = (Object.is(v, -0) ? 0 : v).toFixed(decimals);
  return signed && v > 0 ? `+${text}` : text;
}

const verdictColor: Record<string, string> = {
  better: '#2ca02c',
  tie: '#7f7f7f',
  worse: '#d62728',
  'no-interval': '#1f77b4',
};

/**
 * A forest plot of metricopt minus each baseline (natural direction): per baseline, the mean
 * over replicates with its 95% interval (thick, coloured by verdict), and under it each
 * replicate's difference with its interval over meta-test seeds (thin).
 */
export function plotForestSvg(r: DemoReport): string {
  const rows: { label: string; v: number; ci: [number, number] | null; verdict: string; main: boolean }[] = [];
  for (const name of methodNames) {
    const c = r.comparisons[name];
    if (!c) continue;
    rows.push({ label: name, v: c.diff, ci: c.ci95, verdict: c.verdict, main: true });
    for (const rep of r.replicates) {
      const rc = rep.comparisons[name];
      if (rc) rows.push({ label: `replicate ${rep.index}`, v: rc.diff, ci: rc.ci95, verdict: rc.verdict, main: false });
    }
  }
  const W = 900;
  const rowH = 17;
  const oneReplicate = r.replicates.length === 1;
  const top = oneReplicate ? 88 : 70;
  const x0 = 230;
  const pw = 600;
  const H = top + rows.length * rowH + 100;
  // The scale follows the points and the across-replicate intervals; a replicate's interval over
  // a few seeds can be very wide and is clipped at the edges.
  const vals = rows.flatMap((x) => [x.v, ...(x.main ? (x.ci ?? []) : [])]).filter(Number.isFinite);
  let lo = Math.min(0, ...vals);
  let hi = Math.max(0, ...vals);
  if (hi - lo < 1e-9) {
    lo -= 0.01;
    hi += 0.01;
  }
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const sx = (v: number) => x0 + ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * pw;
  const better = r.direction === 'minimize' ? 'left' : 'right';
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(`${r.dataset} / ${r.metric}: metricopt minus each baseline`)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(`${r.dataset} / ${r.metric}: metricopt minus each baseline (${r.reportSplit === 'test' ? 'test' : 'train hold-out'})`)}</text>`,
    `<text x="${W / 2}" y="42" text-anchor="middle" fill="#555">${escapeXml(`thick: mean over ${r.replicates.length} replicate(s) with 95% CI; thin: each replicate, CI over its ${r.seeds.length} meta-test seed(s); metricopt better to the ${better}`)}</text>`,
    ...(oneReplicate
      ? [
          `<text x="${W / 2}" y="60" text-anchor="middle" fill="#1f77b4">${escapeXml('One replicate gives no interval across replicates, so no verdict: run with --replicates 5 for 95% intervals.')}</text>`,
        ]
      : []),
  ];
  const axisY = top + rows.length * rowH + 12;
  for (const t of niceTicks(lo, hi)) {
    parts.push(`<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${top - 8}" y2="${axisY}" stroke="#eee"/>`);
    parts.push(
      `<text x="${sx(t).toFixed(1)}" y="${axisY + 16}" text-anchor="middle">${tickLabel(t, lo, hi, 5, true)}</text>`,
    );
  }
  parts.push(
    `<line x1="${sx(0)}" x2="${sx(0)}" y1="${top - 8}" y2="${top + rows.length * rowH}" stroke="#333" stroke-dasharray="4 3"/>`,
  );
  rows.forEach((row, i) => {
    const y = top + i * rowH + rowH / 2;
    const color = verdictColor[row.verdict] ?? '#000';
    const width = row.main ? 3 : 1.2;
    parts.push(
      `<text x="${row.main ? 10 : 30}" y="${y + 4}"${row.main ? ' font-weight="bold"' : ' fill="#555"'}>${escapeXml(row.main ? `${row.label} (${verdictText(row.verdict)})` : row.label)}</text>`,
    );
    if (row.ci)
      parts.push(
        `<line x1="${sx(row.ci[0]).toFixed(1)}" x2="${sx(row.ci[1]).toFixed(1)}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="${width}"/>`,
      );
    parts.push(`<circle cx="${sx(row.v).toFixed(1)}" cy="${y}" r="${row.main ? 4 : 2.5}" fill="${color}"/>`);
  });
  parts.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${axisY}" y2="${axisY}" stroke="#999"/>`);
  parts.push(
    `<text x="${x0 + pw / 2}" y="${axisY + 36}" text-anchor="middle">metricopt minus baseline, ${escapeXml(r.metric)} (natural direction)</text>`,
  );
  // Legend: what each colour says.
  const legend: [string, string][] = [
    ['better', 'better: the 95% CI lies wholly on the better side'],
    ['tie', 'tie: the CI spans 0'],
    ['worse', 'worse'],
    ['no-interval', 'no interval (one replicate)'],
  ];
  let lx = 20;
  for (const [verdict, text] of legend) {
    parts.push(`<circle cx="${lx + 5}" cy="${axisY + 60}" r="5" fill="${verdictColor[verdict]}"/>`);
    parts.push(`<text x="${lx + 15}" y="${axisY + 64}">${escapeXml(text)}</text>`);
    lx += 30 + text.length * 6.2;
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** How a verdict reads in a row label. */
const verdictText = (verdict: string): string => (verdict === 'no-interval' ? 'no interval: 1 replicate' : verdict);

function polyline(
  values: number[],
  sx: (t: number) => number,
  sy: (v: number) => number,
  color: string,
  width: number,
  opacity: number,
): string {
  const pts = values
    .map((v, t) => (Number.isFinite(v) ? `${sx(t).toFixed(1)},${sy(v).toFixed(1)}` : ''))
    .filter((s) => s !== '')
    .join(' ');
  return `<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="${width}" stroke-opacity="${opacity}"/>`;
}

function fmt(v: number): string {
  return Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
