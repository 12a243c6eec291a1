/**
 * The hyper-parameters of `crystalwatch train` with their defaults applied and checked once,
 * so fitting, selection and the card read the same values.
 */
import { DEFAULT_AUGMENT, NO_AUGMENT, type AugmentOptions } from './augment.js';

export interface TrainSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  inputSize: number;
  /** Epochs without a better validation F1 before stopping. */
  patience: number;
  augment: AugmentOptions;
  norm: 'batch' | 'none';
  width: number;
  dropout: number;
}

export type TrainSettingsInput = Partial<Omit<TrainSettings, 'augment'>> & { augment?: AugmentOptions | false };

/** Defaults applied; throws naming the flag and its value when one is out of range. */
export function resolveSettings(options: TrainSettingsInput): TrainSettings {
  const settings: TrainSettings = {
    epochs: options.epochs ?? 20,
    batchSize: options.batchSize ?? 32,
    lr: options.lr ?? 2e-3,
    seed: options.seed ?? 1,
    inputSize: options.inputSize ?? 64,
    patience: options.patience ?? 6,
    augment: options.augment === false ? NO_AUGMENT : (options.augment ?? DEFAULT_AUGMENT),
    norm: options.norm ?? 'batch',
    width: options.width ?? 8,
    dropout: options.dropout ?? 0.3,
  };
  const { epochs, batchSize, lr, inputSize, width, dropout } = settings;
  for (const [name, value, ok] of [
    ['--epochs', epochs, Number.isInteger(epochs) && epochs >= 1],
    ['--batch-size', batchSize, Number.isInteger(batchSize) && batchSize >= 1],
    ['--lr', lr, lr > 0 && lr < 1],
    ['--input-size', inputSize, Number.isInteger(inputSize) && inputSize >= 32 && inputSize % 32 === 0],
    ['--width', width, Number.isInteger(width) && width >= 1],
    ['--dropout', dropout, dropout >= 0 && dropout < 1],
  ] as const) {
    if (!ok)
      throw new Error(
        `train: ${name} got ${value}; use a positive integer (epochs, batch size), a learning rate in (0, 1), or an input size that is a multiple of 32 (≥ 32)`,
      );
  }
  return settings;
}
