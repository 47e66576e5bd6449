import type { SparseDataset } from '../data/dataset.js';
import type { AdaptedModel } from './adapted-model.js';
import type { FrozenConvNet } from './convnet.js';
import { FrozenConvNetModel } from './convnet-model.js';
import { FrozenMlpModel } from './frozen-mlp.js';
import type { FrozenMlp } from './mlp.js';

/**
 * A pre-trained, frozen backbone with its adapter as plain data (typed arrays): what a compute
 * pool's worker threads receive to build the same model on their side.
 */
export type AdaptedModelSpec =
  | { architecture: 'mlp'; frozen: FrozenMlp }
  | { architecture: 'convnet'; frozen: FrozenConvNet };

/** The adapted model of a spec on a data set (the caller disposes it). */
export function buildAdaptedModel(spec: AdaptedModelSpec, ds: SparseDataset): AdaptedModel {
  return spec.architecture === 'convnet'
    ? new FrozenConvNetModel(spec.frozen, ds)
    : new FrozenMlpModel(spec.frozen, ds);
}
