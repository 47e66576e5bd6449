/**
 * In-process cost of one value-function gradient at batch 1 (d = 16 and 128): the compiled
 * value function (shared/method/value-function-f32.ts: wasm SIMD kernels, and its JS-loop
 * fallback) next to the same MLP in tfjs (tf.tidy +
 * tf.grad on the wasm backend, cpu when wasm cannot load). Prints one JSON object on stdout.
 * Run through bench/value-api.mjs.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { phiAnswer } from '../shared/use-cases/serving/answers.js';
import { parseJson } from '../functions/value-api/body.js';
import { checkPhiBody } from '../shared/use-cases/serving/request-bodies.js';
import { CompiledValueFunction } from '../shared/method/value-function-f32.js';
import type { ValueFunctionCheckpoint } from '../shared/schemas/checkpoint.js';
import type { GradientResult, ServedValueFunction } from '../shared/use-cases/serving/serve-guidance.js';
import { Rng } from '../shared/util/random.js';
import { makeCheckpoint } from '../test/helpers/make-checkpoint.js';

interface Stats {
  medianUs: number;
  p99Us: number;
  samples: number;
}

/** Times `fn` call by call (after a warm-up) and returns median and p99 in microseconds. */
function time(fn: () => void, samples: number, warmup: number): Stats {
  for (let i = 0; i < warmup; i++) fn();
  const us = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    us[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  us.sort();
  const at = (q: number) => us[Math.min(samples - 1, Math.floor(q * samples))] as number;
  return { medianUs: round(at(0.5)), p99Us: round(at(0.99)), samples };
}

const round = (x: number) => Math.round(x * 100) / 100;

/** The checkpoint's MLP as tfjs ops: f(phi) = tMean + tStd * mean_m member_m((phi - mean) / std). */
function tfjsValueFunction(c: ValueFunctionCheckpoint): (phi: tf.Tensor2D) => tf.Scalar {
  const mean = tf.tensor1d(c.inputNormalisation.mean);
  const invStd = tf.tensor1d(c.inputNormalisation.std.map((s) => 1 / s));
  const members = c.members.map((m) =>
    m.layers.map((l) => ({ w: tf.tensor2d(l.weights, [l.in, l.out]), b: tf.tensor1d(l.bias) })),
  );
  return (phi) => {
    const x = tf.mul(tf.sub(phi, mean), invStd);
    let sum: tf.Tensor | undefined;
    for (const layers of members) {
      let h: tf.Tensor2D = x as tf.Tensor2D;
      layers.forEach((l, i) => {
        const z = tf.add(tf.matMul(h, l.w), l.b) as tf.Tensor2D;
        h = i < layers.length - 1 ? tf.relu(z) : z;
      });
      sum = sum ? tf.add(sum, h) : h;
    }
    return tf.sum(
      tf.add(c.targetNormalisation.mean, tf.mul(c.targetNormalisation.std / members.length, sum as tf.Tensor)),
    );
  };
}

const samples = Number(process.env.BENCH_SAMPLES ?? 20000);
const tfSamples = Number(process.env.BENCH_TF_SAMPLES ?? 2000);
let backend = 'wasm';
try {
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
  await tf.ready();
} catch {
  backend = 'cpu';
  await tf.setBackend('cpu');
}

const rows = [];
for (const d of [16, 128]) {
  const checkpoint = makeCheckpoint({ d, seed: d });
  const compiled = new CompiledValueFunction(checkpoint);
  const phi = new Rng(7).normals(d);
  const values = new Float32Array(1);
  const gradients = new Float32Array(d);
  const forward = time(() => compiled.predict(phi, 1, values), samples, samples / 4);
  const gradient = time(() => compiled.predictWithGradients(phi, 1, values, gradients), samples, samples / 4);
  const js = new CompiledValueFunction(checkpoint, { simd: false });
  const jsForward = time(() => js.predict(phi, 1, values), samples, samples / 4);
  const jsGradient = time(() => js.predictWithGradients(phi, 1, values, gradients), samples, samples / 4);

  const f = tfjsValueFunction(checkpoint);
  const grad = tf.grad((x: tf.Tensor) => f(x as tf.Tensor2D));
  const phiTensor = tf.tensor2d(phi, [1, d]);
  const before = tf.memory().numTensors;
  const tfForward = time(
    () => {
      const v = tf.tidy(() => f(phiTensor));
      v.dataSync();
      v.dispose();
    },
    tfSamples,
    tfSamples / 4,
  );
  const tfGradient = time(
    () => {
      const [v, g] = tf.tidy(() => [f(phiTensor), grad(phiTensor)]);
      v?.dataSync();
      g?.dataSync();
      v?.dispose();
      g?.dispose();
    },
    tfSamples,
    tfSamples / 4,
  );
  const leaked = tf.memory().numTensors - before;
  // Agreement of the two implementations on this phi (float32 tolerance).
  const [tv, tg] = tf.tidy(() => [f(phiTensor), grad(phiTensor)]);
  const fv = compiled.predictWithGradients(phi, 1);
  const tgData = tg?.dataSync() as Float32Array;
  let maxGradDiff = 0;
  for (let i = 0; i < d; i++)
    maxGradDiff = Math.max(maxGradDiff, Math.abs((tgData[i] as number) - (fv.gradients[i] as number)));
  const valueDiff = Math.abs((tv?.dataSync()[0] as number) - (fv.values[0] as number));
  tv?.dispose();
  tg?.dispose();
  rows.push({
    d,
    f32: {
      backend: compiled.backend,
      forward,
      gradient,
      gradientOverForward: round(gradient.medianUs / forward.medianUs),
    },
    jsLoops: { forward: jsForward, gradient: jsGradient },
    tfjs: { backend, forward: tfForward, gradient: tfGradient, leakedTensors: leaked },
    speedup: round(tfGradient.medianUs / gradient.medianUs),
    agreement: { valueDiff, maxGradDiff },
  });
}
// JSON text at d = 128, batch 1, over 256 different phi (and so 256 different answers): reading a
// body (parseJson and checkPhiBody, vs JSON.parse and float32 rows) and writing a gradient
// answer (phiAnswer, 9 digits by toPrecision, vs the shortest number-to-string text), both encoded.
const jsonText = (() => {
  const d = 128;
  const checkpoint = makeCheckpoint({ d, seed: d });
  const compiled = new CompiledValueFunction(checkpoint);
  const served: ServedValueFunction = { id: checkpoint.id, version: checkpoint.version, checkpoint, compiled };
  const phis = Array.from({ length: 256 }, (_, k) => Array.from({ length: d }, (_, i) => Math.sin(i + 1 + 0.37 * k)));
  const bodies = phis.map((phi) => new TextEncoder().encode(JSON.stringify({ phi })));
  const results = phis.map((phi) => {
    const { values, gradients } = compiled.predictWithGradients(Float32Array.from(phi), 1);
    const natural = Float32Array.from(values, (v) => 1 - v);
    return { served, n: 1, single: true, normalised: values, natural, gradients };
  });
  let k = 0;
  const next = () => {
    k = (k + 1) & 255;
    return k;
  };
  const read = time(
    () => checkPhiBody('gradient', parseJson(bodies[next()] as Uint8Array, { op: 'gradient', maxContainers: 1088 })),
    samples,
    samples / 4,
  );
  const readViaJsonParse = time(
    () => {
      const body = JSON.parse(new TextDecoder().decode(bodies[next()])) as { phi: number[] };
      Float32Array.from(body.phi);
    },
    samples,
    samples / 4,
  );
  const write = time(() => Buffer.from(phiAnswer(results[next()] as GradientResult)), samples, samples / 4);
  const writeViaStrings = time(
    () => {
      const r = results[next()] as GradientResult;
      let text = `{"id":"${served.id}","version":1,"values":[${r.natural[0]}],"normalised":[${r.normalised[0]}],"gradients":[[`;
      for (let i = 0; i < d; i++) text += i === 0 ? `${r.gradients[i]}` : `,${r.gradients[i]}`;
      Buffer.from(`${text}]]}`);
    },
    samples,
    samples / 4,
  );
  const answerBytes = Buffer.byteLength(phiAnswer(results[0] as GradientResult));
  return { d, bodyBytes: bodies[0]?.byteLength, answerBytes, read, readViaJsonParse, write, writeViaStrings };
})();

process.stdout.write(`${JSON.stringify({ node: process.version, samples, tfSamples, rows, jsonText })}\n`);
