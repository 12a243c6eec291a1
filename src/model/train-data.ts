/**
 * The crops `crystalwatch train` learns from: the labelled folder read at the model's input
 * size, and its train/valid/test splits (splits.ts), with the lines a user reads to trust them
 * (how many crops per split, what was carved, what the leakage guard found).
 */
import { loadDataset, type LoadedDataset } from './dataset.js';
import { chooseSplits, type Splits } from './splits.js';
import { progressBar, type Progress } from './train-progress.js';
import type { Logger } from '../config/logger.js';

export interface SplitCount {
  total: number;
  pg: number;
  cex: number;
}

export interface TrainingData {
  data: LoadedDataset;
  splits: Splits;
  splitCounts: { train: SplitCount; valid: SplitCount; test: SplitCount };
}

export interface TrainingDataOptions {
  /** The crop folder (any layout loadDataset reads). */
  root: string;
  inputSize: number;
  splitSeed: number;
  split: [number, number, number] | undefined;
  /** Where a split seed other than the training seed came from (`--split-seed`, `--init <dir>`): said after the data lines. */
  splitSeedFrom?: string;
  progress: Progress;
  logger: Logger;
}

/** Reads the folder and splits it; throws when nothing is left to train on. */
export async function loadTrainingData(options: TrainingDataOptions): Promise<TrainingData> {
  const { root, inputSize, splitSeed, split, progress } = options;
  const data = await loadDataset(root, {
    inputSize,
    seed: splitSeed,
    split,
    onProgress: (done, total) => {
      if (done === total || done % 250 === 0) progress(`reading ${done}/${total} crops ${progressBar(done, total)}`, done === total);
    },
  });
  // The epoch is chosen on `valid`, the report is on `test`: never the same crops, never training crops.
  const presplit = data.entries.some((e) => e.split !== undefined);
  const splits = chooseSplits(data, split, splitSeed, presplit);
  if (splits.train.length === 0)
    throw new Error(`train: the training split of ${root} is empty (${data.entries.length} crops); give more crops or a train/ folder`);
  const count = (idx: number[]): SplitCount => ({
    total: idx.length,
    pg: idx.filter((i) => data.labels[i] === 1).length,
    cex: idx.filter((i) => data.labels[i] === 0).length,
  });
  const splitCounts = { train: count(splits.train), valid: count(splits.valid), test: count(splits.test) };
  const loaded: TrainingData = { data, splits, splitCounts };
  describeData(loaded, splitSeed, options);
  return loaded;
}

function describeData({ data, splits, splitCounts }: TrainingData, splitSeed: number, { progress, logger, splitSeedFrom }: TrainingDataOptions): void {
  for (const [name, n] of Object.entries(splits.carved)) {
    progress(
      `no ${name}/ folder: ${n} crops of train/ set aside as the ${name} split (stratified, duplicate groups kept whole, split seed ${splitSeed})`,
      true,
    );
  }
  const { duplicates, groupsAcrossGivenSplits } = data;
  const dupLine = `leakage guard: ${duplicates.groups} duplicate groups (${duplicates.itemsInGroups} crops; ${duplicates.exactLinks} exact rotation/flip copies, ${duplicates.nearLinks} near copies)${groupsAcrossGivenSplits ? `, ${groupsAcrossGivenSplits} of them span the given train/valid/test folders — the test score may be optimistic` : ', each kept within one split'}`;
  progress(
    `data: ${data.entries.length} crops (${data.layout}), train ${splitCounts.train.total} / valid ${splitCounts.valid.total} / test ${splitCounts.test.total}${data.unreadable.length ? `, ${data.unreadable.length} unreadable skipped` : ''}`,
    true,
  );
  progress(dupLine, true);
  if (splitSeedFrom !== undefined) progress(`split seed ${splitSeed} (from ${splitSeedFrom})`, true);
  for (const u of data.unreadable.slice(0, 5)) logger.warn({ file: u.path, reason: u.reason }, 'skipped unreadable crop');
}
