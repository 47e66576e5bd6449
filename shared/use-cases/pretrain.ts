import * as tf from '@tensorflow/tfjs';
import { type SparseDataset, toDense } from '../data/dataset.js';
import type { AdaptedModel } from '../models/adapted-model.js';
import { defaultConvNetConfig, FrozenConvNetModel, imageSide, pretrainConvNet } from '../models/convnet.js';
import { FrozenMlpModel } from '../models/frozen-mlp.js';
import { pretrainMlp } from '../models/mlp.js';
import type { ProgressReporter } from '../ports/progress.port.js';
import type { RunConfig } from './recipes.js';

/**
 * Cross-entropy pre-training of the backbone (class-balanced batches), then freezing it with
 * its adapter: the MLP with input dynamic biases or FiLM, or the ConvNet with FiLM.
 */
export async function pretrainAdaptedModel(
  ds: SparseDataset,
  trainRows: Int32Array,
  cfg: Pick<RunConfig, 'architecture' | 'model' | 'pretrain'>,
  progress: ProgressReporter,
): Promise<AdaptedModel> {
  if (cfg.architecture === 'convnet') {
    const side = imageSide(ds);
    if (!side.ok) throw side.error;
    const frozen = await pretrainConvNet(
      ds,
      trainRows,
      { ...defaultConvNetConfig, side: side.value },
      cfg.pretrain,
      progress,
    );
    return new FrozenConvNetModel(frozen, ds);
  }
  const denseX = tf.tensor2d(toDense(ds), [ds.rows, ds.features]);
  try {
    const frozen = await pretrainMlp(ds, trainRows, denseX, cfg.model, cfg.pretrain, progress);
    return new FrozenMlpModel(frozen, ds);
  } finally {
    denseX.dispose();
  }
}
