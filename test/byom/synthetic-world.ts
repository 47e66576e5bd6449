import { Rng } from '../../shared/util/random.js';

/**
 * A world where the true metric is known: d-dimensional phi, a surrogate loss |phi - a|^2 whose
 * noisy gradient descent drives the trajectories, and a metric that is a quadratic bowl around
 * another point c (the loss does not lead there), observed sparsely and with noise along them.
 */
export interface World {
  d: number;
  a: number[];
  c: number[];
  /** The true metric (natural direction: minimised). */
  metric(phi: ArrayLike<number>): number;
  /** Its gradient. */
  metricGradient(phi: ArrayLike<number>): number[];
}

export function makeWorld(d: number, seed: number): World {
  const rng = new Rng(seed);
  const a = Array.from(rng.normals(d), (v) => 0.8 * v);
  // The bowl's centre: off to the side of the loss's optimum.
  const c = a.map((v, j) => v + (j % 2 === 0 ? 1.2 : -1.2));
  const scale = 1 / (4 * d);
  return {
    d,
    a,
    c,
    metric: (phi) => scale * c.reduce((s, cj, j) => s + ((phi[j] as number) - cj) ** 2, 0),
    metricGradient: (phi) => c.map((cj, j) => 2 * scale * ((phi[j] as number) - cj)),
  };
}

export interface RecordedLine {
  trajectory: string;
  step: number;
  phi: number[];
  metric?: number;
}

/**
 * Loss-only runs from random phi_0 ~ N(0, 1.5^2): T noisy gradient steps each, phi logged at
 * every step, the metric (plus noise) at K steps (t = 0, t = T and K - 2 random ones).
 */
export function recordTrajectories(
  world: World,
  options: { trajectories: number; steps: number; K: number; seed: number; prefix?: string },
): RecordedLine[] {
  const rng = new Rng(options.seed);
  const { d, a } = world;
  const lines: RecordedLine[] = [];
  for (let i = 0; i < options.trajectories; i++) {
    const name = `${options.prefix ?? 'run'}-${i}`;
    const observed = new Set([0, options.steps, ...rng.sampleDistinct(1, options.steps, options.K - 2)]);
    let phi = Array.from(rng.normals(d), (v) => 1.5 * v);
    for (let t = 0; t <= options.steps; t++) {
      const line: RecordedLine = { trajectory: name, step: t, phi: phi.map((v) => Math.fround(v)) };
      if (observed.has(t)) line.metric = world.metric(line.phi) + 0.002 * (rng.normals(1)[0] as number);
      lines.push(line);
      const noise = rng.normals(d);
      phi = phi.map((v, j) => v - 0.04 * (2 * (v - (a[j] as number)) + 1.0 * (noise[j] as number)));
    }
  }
  return lines;
}

export const toJsonLines = (lines: readonly RecordedLine[]): string =>
  `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;

export function cosine(u: ArrayLike<number>, v: ArrayLike<number>): number {
  let uv = 0;
  let uu = 0;
  let vv = 0;
  for (let j = 0; j < u.length; j++) {
    uv += (u[j] as number) * (v[j] as number);
    uu += (u[j] as number) ** 2;
    vv += (v[j] as number) ** 2;
  }
  return uv / Math.sqrt(uu * vv);
}
