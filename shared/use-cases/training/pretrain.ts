import type { SparseDataset } from '../../data/dataset.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import { defaultConvNetConfig, imageSide } from '../../models/convnet.js';
import { pretrainConvNet } from '../../models/convnet-pretrain.js';
import { pretrainMlp } from '../../models/mlp.js';
import { type AdaptedModelSpec, buildAdaptedModel } from '../../models/model-spec.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
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
  return buildAdaptedModel(await pretrainModelSpec(ds, trainRows, cfg, progress), ds);
}

/** The pre-trained, frozen backbone and adapter as plain data (buildAdaptedModel makes the model). */
export async function pretrainModelSpec(
  ds: SparseDataset,
  trainRows: Int32Array,
  cfg: Pick<RunConfig, 'architecture' | 'model' | 'pretrain' | 'convnet'>,
  progress: ProgressReporter,
): Promise<AdaptedModelSpec> {
  if (cfg.architecture === 'convnet') {
    const side = imageSide(ds);
    if (!side.ok) throw side.error;
    const frozen = await pretrainConvNet(
      ds,
      trainRows,
      cfg.convnet ?? { ...defaultConvNetConfig, side: side.value },
      cfg.pretrain,
      progress,
    );
    return { architecture: 'convnet', frozen };
  }
  return { architecture: 'mlp', frozen: await pretrainMlp(ds, trainRows, cfg.model, cfg.pretrain, progress) };
}
