/**
 * Which crops train, which select the epoch (validation) and which are held out (test). The
 * held-out report must be on crops the model neither trained on nor was selected on; a
 * dataset that gives only some splits gets the missing ones carved from its training folder,
 * the way the dataset code splits a flat folder: stratified by class, never cutting a group of
 * duplicate (rotated, flipped, near-identical) crops.
 */
import { groupedStratifiedSplit, type LoadedDataset, type SplitName } from './dataset.js';

export interface Splits {
  train: number[];
  valid: number[];
  test: number[];
  /** Per entry, the split it ended in (the given one, or the carved one). */
  splitOf: SplitName[];
  /** Splits carved from the given train/ folder, and how many crops each got. */
  carved: Partial<Record<'valid' | 'test', number>>;
}

const DEFAULT_SHARES: [number, number, number] = [70, 25, 5];

/**
 * The three splits of a loaded dataset. `shares` are the train/valid/test proportions used to
 * size carved splits (default 70/25/5). Throws when a flat folder's shares leave a split empty
 * or when there is too little to carve from.
 */
export function chooseSplits(
  data: Pick<LoadedDataset, 'root' | 'splitOf' | 'labels' | 'duplicates'>,
  shares: [number, number, number] | undefined,
  seed: number,
  presplit: boolean,
): Splits {
  const of = (name: SplitName, splitOf: SplitName[]) => splitOf.flatMap((s, i) => (s === name ? [i] : []));
  const given = data.splitOf;
  if (!presplit && shares && (shares[1] <= 0 || shares[2] <= 0)) {
    throw new Error(
      `train: --split ${shares.join('/')} leaves the ${shares[1] <= 0 ? 'validation' : 'test'} split empty; the epoch is chosen on validation crops and the report is on test crops the model never saw, so both need a share (e.g. 70/25/5)`,
    );
  }
  const missing = { valid: of('valid', given).length === 0, test: of('test', given).length === 0 };
  const splitOf = [...given];
  const carved: Splits['carved'] = {};
  if (missing.valid || missing.test) {
    const trainIdx = of('train', given);
    const [t, v, h] = shares ?? DEFAULT_SHARES;
    const fractions: [number, number, number] = [t, missing.valid ? v : 0, missing.test ? h : 0];
    // Re-split only the training folder, keeping duplicate groups whole.
    const labels = Uint8Array.from(trainIdx, (i) => data.labels[i]!);
    const groups = Int32Array.from(trainIdx, (i) => data.duplicates.groupOf[i]!);
    const within = groupedStratifiedSplit(labels, groups, fractions, seed);
    trainIdx.forEach((i, k) => (splitOf[i] = within[k]!));
    for (const name of ['valid', 'test'] as const) {
      if (!missing[name]) continue;
      const n = within.filter((s) => s === name).length;
      if (n === 0 || within.every((s) => s !== 'train')) {
        throw new Error(
          `train: ${data.root} has no ${name} split and its train split (${trainIdx.length} crop${trainIdx.length === 1 ? '' : 's'}) is too small to carve one from; add a ${name}/ folder or more crops`,
        );
      }
      carved[name] = n;
    }
  }
  return { train: of('train', splitOf), valid: of('valid', splitOf), test: of('test', splitOf), splitOf, carved };
}
