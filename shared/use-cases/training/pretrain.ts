import type { SparseDataset } from '../../data/dataset.js';
import type { AdaptedModel } from '../../models/adapted-model.js';
import { defaultConvNetConfig, imageSide } from '../../models/convnet.js';
import { pretrainConvNet } from '../../models/convnet-pretrain.js';
import { pretrainMlp } from '../../models/mlp.js';
import { type AdaptedModelSpec, buildAdaptedModel } from '../../models/model-spec.js';
import type { ModelError } from '../../models/errors.js';
import type { ProgressReporter } from '../../ports/progress.port.js';
import { ok, type Result } from '../../util/result.js';
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
): Promise<Result<AdaptedModel, ModelError>> {
  const spec = await pretrainModelSpec(ds, trainRows, cfg, progress);
  return spec.ok ? ok(buildAdaptedModel(spec.value, ds)) : spec;
}

/** The pre-trained, frozen backbone and adapter as plain data (buildAdaptedModel makes the model). */
export async function pretrainModelSpec(
  ds: SparseDataset,
  trainRows: Int32Array,
  cfg: Pick<RunConfig, 'architecture' | 'model' | 'pretrain' | 'convnet'>,
  progress: ProgressReporter,
): Promise<Result<AdaptedModelSpec, ModelError>> {
  if (cfg.architecture === 'convnet') {
    const side = imageSide(ds);
    if (!side.ok) return side;
    const frozen = await pretrainConvNet(
      ds,
      trainRows,
      cfg.convnet ?? { ...defaultConvNetConfig, side: side.value },
      cfg.pretrain,
      progress,
    );
    return ok({ architecture: 'convnet', frozen });
  }
  return ok({ architecture: 'mlp', frozen: await pretrainMlp(ds, trainRows, cfg.model, cfg.pretrain, progress) });
}
