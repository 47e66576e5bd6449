#!/usr/bin/env node
// Value-function training per step, the f32 engine (the WebAssembly SIMD kernels of
// value-function-kernels.wat, the default) next to the tfjs reference, side by side in one
// process, at the recipes' default sizes:
//   tuned (npm start): offline Adam, 64 tasks x 26 rows (T = 50, stride 2), d = 17, no BatchNorm,
//     no embedding term, 17-64-32-32-16-1;
//   paper: online Reptile, SGD on one task of 51 rows a step, BatchNorm, embedding term (hard mining).
// Rounds alternate the engines so machine noise hits both alike; each round is a fresh fit:
// `--epochs` epochs of trainOffline over 512 tasks (8 steps an epoch) / trainReptileOnline over
// 40 tasks (the public entry points, net set-up and batch packing included). Reports the median
// and best per-step wall time and the median CPU time per step (process.cpuUsage, less
// sensitive to a shared machine). The f32 engine's products skip the zeros of the ReLUs, which
// are ~50% of a fresh net's activations and 70-80% of the deeper layers' after a few epochs, so
// its cost per step falls as a fit goes on (tfjs's does not): --epochs 1 is its dearest case, the
// default fit of `npm start` runs 60 epochs. Usage:
//   npm run build && nice -n 10 node bench/value-function-train.mjs [--rounds 7] [--epochs 8] [--backend wasm]
import { parseArgs } from 'node:util';
import { selectBackend } from '../dist/shared/adapters/compute-backend.js';
import {
  labelTask,
  paperTrainDefaults,
  trainOffline,
  trainReptileOnline,
  tunedTrainDefaults,
} from '../dist/shared/method/value-function-training.js';
import { silentProgress } from '../dist/shared/ports/progress.port.js';
import { Rng } from '../dist/shared/util/random.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    epochs: { type: 'string', default: '8' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const rounds = Number(values.rounds);
const epochs = Number(values.epochs);
const backend = (await selectBackend(values.backend)).name;

/** Random-walk trajectories with smooth labels (as in test/core/value-function-training.test.ts). */
function tasks(n, t1, d, seed) {
  const rng = new Rng(seed);
  const dir = rng.normals(d);
  return Array.from({ length: n }, () => {
    const x = new Float32Array(t1 * d);
    const phi = rng.normals(d);
    const mean = new Float32Array(t1);
    const std = new Float32Array(t1);
    for (let t = 0; t < t1; t++) {
      let s = 0;
      for (let j = 0; j < d; j++) {
        if (t > 0) phi[j] += 0.3 * rng.normal();
        x[t * d + j] = phi[j];
        s += phi[j] * dir[j];
      }
      mean[t] = Math.tanh(s / Math.sqrt(d)) + 0.05 * rng.normal();
      std[t] = 0.05 + 0.2 * rng.next();
    }
    return labelTask(x, mean, std, 2);
  });
}

const d = 17;
const cases = [
  {
    name: `tuned: offline Adam, 64 tasks x 26 rows a step, ${epochs} epoch(s) of 8 steps`,
    tasks: tasks(64 * 8, 26, d, 1),
    steps: 8 * epochs,
    run: (t, cfg) => trainOffline(t, d, { ...cfg, epochs }, silentProgress),
    cfg: tunedTrainDefaults,
  },
  {
    name: 'paper: online Reptile, 1 task x 51 rows a step (BatchNorm, embedding term)',
    tasks: tasks(40, 51, d, 2),
    steps: 40,
    run: (t, cfg) => trainReptileOnline(t, d, cfg, silentProgress),
    cfg: paperTrainDefaults,
  },
];

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
};

console.log(`tfjs backend ${backend}; ${rounds} rounds after one warm-up round; ms per training step`);
for (const c of cases) {
  const wall = { f32: [], tfjs: [] };
  const cpu = { f32: [], tfjs: [] };
  for (let r = 0; r <= rounds; r++) {
    for (const engine of r % 2 ? ['tfjs', 'f32'] : ['f32', 'tfjs']) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      (await c.run(c.tasks, { ...c.cfg, engine })).dispose();
      const ms = (performance.now() - t0) / c.steps;
      const used = process.cpuUsage(c0);
      if (r === 0) continue;
      wall[engine].push(ms);
      cpu[engine].push((used.user + used.system) / 1000 / c.steps);
    }
  }
  console.log(`\n${c.name}`);
  for (const engine of ['tfjs', 'f32']) {
    console.log(
      `  ${engine.padEnd(4)}  median ${median(wall[engine]).toFixed(3)}  best ${Math.min(...wall[engine]).toFixed(3)}  cpu ${median(cpu[engine]).toFixed(3)}`,
    );
  }
  console.log(
    `  speed-up (median wall) ${(median(wall.tfjs) / median(wall.f32)).toFixed(1)}x, (median cpu) ${(median(cpu.tfjs) / median(cpu.f32)).toFixed(1)}x`,
  );
}
