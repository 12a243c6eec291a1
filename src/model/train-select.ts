/**
 * Model selection for `crystalwatch train`: each epoch is scored on the validation split
 * (never a training crop, never a test crop), and the weights of the epoch with the best F1 of
 * PG are kept, ties going to the lower validation loss. Training stops early when `patience`
 * epochs in a row bring nothing better.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './tf.js';
import type { LoadedDataset } from './dataset.js';
import { classificationReport } from './evaluation.js';
import { predictAll, type Predictor } from './predictor.js';

export interface Validation {
  /** Mean binary cross-entropy of the validation crops (0 for an empty split). */
  valLoss: number;
  valAccuracy: number | null;
  /** F1 of PG at threshold 0.5; null when there was nothing to find and nothing called PG. */
  valF1: number | null;
}

/** Scores the model behind `predictor` on the crops `validIdx` of `data`. */
export async function scoreValidation(
  predictor: Predictor,
  data: Pick<LoadedDataset, 'pixels' | 'labels'>,
  validIdx: number[],
  inputSize: number,
): Promise<Validation> {
  const { pPG } = await predictAll(predictor, data.pixels, validIdx, inputSize);
  const labels = validIdx.map((i) => data.labels[i]!);
  const report = classificationReport(pPG, labels, 0.5);
  let valLoss = 0;
  pPG.forEach((p, k) => {
    // Clipped as Keras clips binaryCrossentropy, so a confident miss costs ~16, not Infinity.
    const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
    valLoss -= labels[k] === 1 ? Math.log(q) : Math.log(1 - q);
  });
  valLoss /= Math.max(1, labels.length);
  return { valLoss, valAccuracy: report.accuracy, valF1: report.classes.pg.f1 };
}

export interface BestEpoch {
  /** Validation F1 of PG (an undefined F1 counts as 0); -1 before any epoch was scored. */
  f1: number;
  loss: number;
  epoch: number;
  /** A copy of the weights, in `model.getWeights()` order; null before any epoch was scored. */
  weights: Float32Array[] | null;
}

/** Keeps the best epoch's weights and counts the epochs since. */
export class EpochSelector {
  #best: BestEpoch = { f1: -1, loss: Infinity, epoch: 0, weights: null };
  #sinceBest = 0;

  constructor(private readonly patience: number) {}

  get best(): BestEpoch {
    return this.#best;
  }

  /** Whether `patience` epochs in a row brought nothing better. */
  get exhausted(): boolean {
    return this.#sinceBest >= this.patience;
  }

  /** Offers an epoch's score; copies the model's weights and returns true when it is the best so far. */
  offer(epoch: number, score: Validation, model: tfTypes.LayersModel): boolean {
    const f1 = score.valF1 ?? 0;
    const best = this.#best;
    const improved = f1 > best.f1 + 1e-9 || (Math.abs(f1 - best.f1) <= 1e-9 && score.valLoss < best.loss);
    if (improved) {
      this.#best = { f1, loss: score.valLoss, epoch, weights: model.getWeights().map((w) => w.dataSync().slice() as Float32Array) };
      this.#sinceBest = 0;
    } else {
      this.#sinceBest++;
    }
    return improved;
  }

  /** Puts the best epoch's weights back into `model` (nothing to do before any epoch). */
  restore(tf: Tf, model: tfTypes.LayersModel): void {
    const { weights } = this.#best;
    if (!weights) return;
    const shapes = model.getWeights().map((w) => w.shape);
    model.setWeights(weights.map((values, i) => tf.tensor(values, shapes[i])));
  }
}
