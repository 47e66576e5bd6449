import { InvalidArgumentError, Option } from 'commander';
import { valueFunctionTrainConfigSchema } from '../shared/schemas/run-config.js';

/** Parsers of option values shared by the commands; a bad value is commander's usage error. */
export const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return n;
};

/** A number >= min (> min when exclusive); `inf` / `Infinity` are allowed. */
export const num =
  (min: number, exclusive = false) =>
  (v: string) => {
    const n = v === 'Infinity' || v === 'inf' ? Number.POSITIVE_INFINITY : Number(v);
    if (Number.isNaN(n) || n < min || (exclusive && n === min)) {
      throw new InvalidArgumentError(`expected a number ${exclusive ? '>' : '>='} ${min}`);
    }
    return n;
  };

export function bool(v: string): boolean {
  if (['true', '1', 'yes', 'on'].includes(v.toLowerCase())) return true;
  if (['false', '0', 'no', 'off'].includes(v.toLowerCase())) return false;
  throw new InvalidArgumentError('expected true or false');
}

/** `--backend`: the tfjs backend, METRICOPT_BACKEND or auto when absent. */
export const backendOption = () =>
  new Option('--backend <name>', 'tfjs backend (default: METRICOPT_BACKEND or auto)').choices([
    'auto',
    'tensorflow',
    'wasm',
    'cpu',
    'webgpu',
  ]);

/** --vf-engine: where value-function training runs (demo, train, fit). */
export const vfEngineOption = () =>
  new Option(
    '--vf-engine <name>',
    'value-function training kernels: f32 (plain typed arrays, default) or tfjs (the reference implementation)',
  ).choices(valueFunctionTrainConfigSchema.shape.engine.options);
