import type { SparseDataset } from '../data/dataset.js';
import { err, ok, type Result } from '../util/result.js';
import { ModelError } from './errors.js';

/**
 * A small ConvNet for square single-channel images (the 8x8 digits): two 3x3 'same'
 * convolutions with BatchNorm and LeakyReLU, then a linear classifier. The adapter is FiLM on
 * the second convolution's feature maps: a per-channel scale (1 + gamma) and shift beta,
 * d = 2 x channels.
 *
 * With `pool` (the larger images, Fashion-MNIST at 14 x 14): each convolution's maps are
 * average-pooled 2 x 2 (zero-padded at the bottom and right to an even side), the second
 * before its BatchNorm/bias (pooling is linear and per channel, so the folded network is the
 * same function); FiLM, LeakyReLU and the linear classifier then act on the pooled maps
 * (4 x 4 x 64 for 14 x 14 images: the frozen cache holds 1,024 floats per image).
 */
export interface ConvNetConfig {
  side: number;
  channels: [number, number];
  leakyAlpha: number;
  /** Pooled blocks (see above); absent: the digits network. */
  pool?: boolean;
  /** Factor applied to the pixel values (absent: 1/16, the digits' 0..16 scale). */
  inputScale?: number;
}

export const defaultConvNetConfig: ConvNetConfig = { side: 8, channels: [8, 16], leakyAlpha: 0.1 };

/** The ConvNet for Fashion-MNIST pooled to 14 x 14 (pixels 0..1): FiLM on 64 channels, d = 128. */
export const pooledConvNetConfig: ConvNetConfig = {
  side: 14,
  channels: [16, 64],
  leakyAlpha: 0.1,
  pool: true,
  inputScale: 1,
};

/** Side of the second block's (FiLM'd) maps. */
export function filmSide(cfg: ConvNetConfig): number {
  return cfg.pool ? Math.ceil(Math.ceil(cfg.side / 2) / 2) : cfg.side;
}

/** Entries of the classifier's input: the flattened FiLM'd maps. */
export function classifierInputs(cfg: ConvNetConfig): number {
  const g = filmSide(cfg);
  return g * g * cfg.channels[1];
}

export interface FrozenConvNet {
  config: ConvNetConfig;
  classes: number;
  /** conv kernels [3, 3, in, out] (flattened [9 * in, out]) and biases, BatchNorm folded. */
  conv1: { w: Float32Array; b: Float32Array };
  conv2: { w: Float32Array; b: Float32Array };
  /** dense [side*side*c2, classes]. */
  dense: { w: Float32Array; b: Float32Array };
}

/** The side of the square images a dataset holds, or the user mistake of a ConvNet on other data. */
export function imageSide(ds: Pick<SparseDataset, 'features' | 'name'>): Result<number, ModelError> {
  const side = Math.round(Math.sqrt(ds.features));
  return side * side === ds.features ? ok(side) : err(convNetNeedsImages(ds));
}

/** The user mistake of a ConvNet on data that are not square images. */
export function convNetNeedsImages(ds: Pick<SparseDataset, 'features' | 'name'>): ModelError {
  return new ModelError(
    'CONVNET_NEEDS_IMAGES',
    `--architecture convnet needs square images (side x side features, e.g. digits: 8 x 8); dataset '${ds.name}' has ${ds.features} features (use --architecture mlp)`,
    { features: ds.features },
  );
}
