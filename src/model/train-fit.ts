/**
 * Fitting for `crystalwatch train`: CrystalNet built (or started from a parent model's
 * weights), then epochs of augmented mini-batches under a cosine-decayed learning rate, each
 * scored on the validation split; the best epoch's weights are back in the model at the end.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './tf.js';
import { ARCHITECTURE_NAME, buildModel, modelCost, type ModelCost } from './architecture.js';
import { augmentInto } from './augment.js';
import type { LoadedDataset } from './dataset.js';
import { loadLayersModel } from './io.js';
import type { Predictor } from './predictor.js';
import type { EpochRecord } from './report.js';
import { SeededRandom } from './rng.js';
import type { Splits } from './splits.js';
import { f4, progressBar, type Progress } from './train-progress.js';
import { EpochSelector, scoreValidation, type BestEpoch } from './train-select.js';
import type { TrainSettings } from './train-settings.js';

export interface StartModel {
  model: tfTypes.LayersModel;
  optimizer: tfTypes.Optimizer;
  cost: ModelCost;
}

/** CrystalNet as `settings` describe it, with `init`'s weights when given, compiled for training. */
export async function buildStartModel(tf: Tf, settings: TrainSettings, init: string | undefined, progress: Progress): Promise<StartModel> {
  const { inputSize, seed, norm, width, dropout, lr } = settings;
  const model = buildModel(tf, { inputSize, seed, norm, width, dropout });
  if (init) {
    const start = await loadLayersModel(tf, init);
    const from = start.getWeights();
    const to = model.getWeights();
    const mismatch = from.length !== to.length || from.some((w, i) => w.shape.join('x') !== to[i]!.shape.join('x'));
    if (mismatch) {
      throw new Error(
        `train: --init ${init} has a different architecture (${from.length} weight tensors, first ${from[0]?.shape.join('x')}) from --width ${width} --input-size ${inputSize}${norm === 'none' ? ' --no-batch-norm' : ''} (${to.length}, first ${to[0]?.shape.join('x')}); pass the same options it was trained with`,
      );
    }
    model.setWeights(from);
    start.dispose();
    progress(`initialised from ${init}`, true);
  }
  const optimizer = tf.train.adam(lr);
  model.compile({ optimizer, loss: 'binaryCrossentropy', metrics: ['accuracy'] });
  const cost = modelCost(model);
  progress(
    `model: ${ARCHITECTURE_NAME}, ${cost.parameters} parameters, ${(cost.flopsPerImage / 1e6).toFixed(1)} MFLOPs/image, input ${inputSize}×${inputSize}×1`,
    true,
  );
  return { model, optimizer, cost };
}

export interface FitResult {
  history: EpochRecord[];
  best: BestEpoch;
  trainSeconds: number;
  imagesSeen: number;
}

interface FitContext {
  tf: Tf;
  start: StartModel;
  /** The same model as `start.model`, for scoring the validation split. */
  predictor: Predictor;
  settings: TrainSettings;
  data: Pick<LoadedDataset, 'pixels' | 'labels'>;
  splits: Pick<Splits, 'train' | 'valid'>;
  progress: Progress;
}

/** Cosine decay to 5 % of the starting rate over the planned epochs (epoch counts from 1). */
export const learningRateAt = (lr: number, epoch: number, epochs: number): number =>
  lr * (0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * (epoch - 1)) / epochs)));

/** Trains up to `settings.epochs` epochs, stopping early; leaves the best epoch's weights in the model. */
export async function fit(context: FitContext): Promise<FitResult> {
  const { tf, start, predictor, settings, data, splits, progress } = context;
  const { epochs, lr, seed, inputSize, patience, batchSize } = settings;
  const batches = new BatchMaker(data, inputSize, batchSize, new SeededRandom(seed + 101), settings);
  const selector = new EpochSelector(patience);
  const history: EpochRecord[] = [];
  let trainSeconds = 0;
  let imagesSeen = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const rate = learningRateAt(lr, epoch, epochs);
    (start.optimizer as unknown as { learningRate: number }).learningRate = rate;
    const run = await trainEpoch(context, batches, epoch);
    trainSeconds += run.seconds;
    imagesSeen += run.seen;
    const score = await scoreValidation(predictor, data, splits.valid, inputSize);
    const record: EpochRecord = { epoch, loss: run.loss, accuracy: run.accuracy, ...score, learningRate: rate, seconds: run.seconds };
    history.push(record);
    const improved = selector.offer(epoch, score, start.model);
    progress(
      `epoch ${epoch}/${epochs} loss ${record.loss.toFixed(4)} acc ${record.accuracy.toFixed(4)} | val loss ${score.valLoss.toFixed(4)} acc ${f4(score.valAccuracy)} F1(PG) ${f4(score.valF1)}${improved ? ' *best' : ''} | ${run.seconds.toFixed(0)} s, ${(run.seen / run.seconds).toFixed(0)} img/s`,
      true,
    );
    if (selector.exhausted) {
      progress(`early stop: no better validation F1 for ${patience} epochs; keeping epoch ${selector.best.epoch}`, true);
      break;
    }
  }
  selector.restore(tf, start.model);
  return { history, best: selector.best, trainSeconds, imagesSeen };
}

interface EpochRun {
  /** Mean training loss and accuracy over the epoch's crops. */
  loss: number;
  accuracy: number;
  seen: number;
  seconds: number;
}

async function trainEpoch({ tf, start, settings, splits, progress }: FitContext, batches: BatchMaker, epoch: number): Promise<EpochRun> {
  const order = batches.rng.shuffle([...splits.train]);
  const steps = Math.ceil(order.length / settings.batchSize);
  const epochStart = performance.now();
  let lossSum = 0;
  let accSum = 0;
  let seen = 0;
  for (let step = 0; step < steps; step++) {
    const { x, y, n } = batches.make(tf, order.slice(step * settings.batchSize, (step + 1) * settings.batchSize));
    const [loss, acc] = (await start.model.trainOnBatch(x, y)) as [number, number]; // compiled with one metric: [loss, accuracy]
    x.dispose();
    y.dispose();
    lossSum += loss * n;
    accSum += acc * n;
    seen += n;
    const elapsed = (performance.now() - epochStart) / 1000;
    if (step === steps - 1 || step % 5 === 0) {
      progress(
        `epoch ${epoch}/${settings.epochs} ${progressBar(step + 1, steps)} ${step + 1}/${steps} loss ${(lossSum / seen).toFixed(4)} acc ${(accSum / seen).toFixed(4)} ${(seen / Math.max(elapsed, 1e-3)).toFixed(0)} img/s`,
        false,
      );
    }
  }
  return { loss: lossSum / seen, accuracy: accSum / seen, seen, seconds: (performance.now() - epochStart) / 1000 };
}

/** Augmented mini-batches drawn with one generator, so the same seed gives the same batches. */
class BatchMaker {
  readonly #plane: number;
  readonly #batch: Float32Array;
  readonly #targets: Float32Array;
  readonly #scratch: Float32Array;

  constructor(
    private readonly data: Pick<LoadedDataset, 'pixels' | 'labels'>,
    private readonly inputSize: number,
    batchSize: number,
    readonly rng: SeededRandom,
    private readonly settings: Pick<TrainSettings, 'augment'>,
  ) {
    this.#plane = inputSize * inputSize;
    this.#batch = new Float32Array(batchSize * this.#plane);
    this.#targets = new Float32Array(batchSize);
    this.#scratch = new Float32Array(this.#plane);
  }

  /** The crops `members` augmented into an NHWC batch and its [n, 1] targets. */
  make(tf: Tf, members: number[]): { x: tfTypes.Tensor4D; y: tfTypes.Tensor2D; n: number } {
    const plane = this.#plane;
    const n = members.length;
    members.forEach((idx, b) => {
      augmentInto(this.data.pixels.subarray(idx * plane, (idx + 1) * plane), this.inputSize, this.#batch, b, this.rng, this.settings.augment, this.#scratch);
      this.#targets[b] = this.data.labels[idx]!;
    });
    const x = tf.tensor4d(this.#batch.subarray(0, n * plane), [n, this.inputSize, this.inputSize, 1]);
    const y = tf.tensor2d(this.#targets.subarray(0, n), [n, 1]);
    return { x, y, n };
  }
}
