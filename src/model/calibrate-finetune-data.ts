/**
 * The labelled images `crystalwatch calibrate --fine-tune DIR` retrains on, checked before any
 * training: the folder read as `crystalwatch train` reads it (dataset.ts layouts), split as
 * train splits it (splits.ts: stratified, duplicate groups never cut; the same seed and shares
 * are then given to train, so both see the same split), a held-out test split large enough to
 * report on, and no image shared with the calibration folders.
 *
 * The fine-tuning test split is never trained on, never used to pick the epoch, and never
 * calibrated on; it is the only place the fine-tuned model's figures come from.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { CalibrationInputError, listImages } from './calibrate-inputs.js';
import { loadDataset, type SplitName } from './dataset.js';
import { chooseSplits } from './splits.js';

/** Fewest crops of each class the held-out test split must hold to report fine-tuning figures. */
export const MIN_TEST_PER_CLASS = 20;
/** Train/valid/test shares for a folder that gives no split: a fifth held out, so a few hundred crops suffice. */
export const FINE_TUNE_SPLIT: [number, number, number] = [60, 20, 20];

export interface FineTuneFile {
  /** Relative to the fine-tune folder. */
  path: string;
  label: 'cex' | 'pg';
  split: SplitName;
  sha256: string;
}

export type ClassCounts = { cex: number; pg: number };

export interface FineTuneSet {
  root: string;
  layout: string;
  files: FineTuneFile[];
  counts: Record<SplitName, ClassCounts>;
  /** sha256 over `split<TAB>label<TAB>relative path<TAB>content sha256` lines, sorted. */
  fileListSha256: string;
  unreadable: { path: string; reason: string }[];
  /** Where the split came from: the folders (train/ valid/ test/), or the shares below. */
  splitFrom: 'folders' | { shares: [number, number, number]; seed: number };
}

export interface ReadFineTuneOptions {
  inputSize: number;
  splitSeed: number;
  split?: [number, number, number];
  minTestPerClass?: number;
  onProgress?: (done: number, total: number) => void;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

export async function readFineTuneSet(folder: string, o: ReadFineTuneOptions): Promise<FineTuneSet> {
  const root = resolve(folder);
  const split = o.split ?? FINE_TUNE_SPLIT;
  const min = o.minTestPerClass ?? MIN_TEST_PER_CLASS;
  let data;
  try {
    data = await loadDataset(root, { inputSize: o.inputSize, seed: o.splitSeed, split, onProgress: o.onProgress });
  } catch (err) {
    throw new CalibrationInputError(
      `--fine-tune ${folder}: ${(err as Error).message.replace(/^dataset [^:]*: /, '')}; give a folder of labelled images of this camera in cex/ + pg/ (or 0/ + 1/) sub-folders`,
    );
  }
  const presplit = data.entries.some((e) => e.split !== undefined);
  let splits;
  try {
    splits = chooseSplits(data, split, o.splitSeed, presplit);
  } catch (err) {
    throw new CalibrationInputError(`--fine-tune ${folder}: ${(err as Error).message.replace(/^train: /, '')}`);
  }
  const files: FineTuneFile[] = [];
  for (let i = 0; i < data.entries.length; i++) {
    const e = data.entries[i]!;
    files.push({ path: e.path, label: e.label === 1 ? 'pg' : 'cex', split: splits.splitOf[i]!, sha256: sha256(await readFile(join(root, e.path))) });
  }
  const counts = { train: { cex: 0, pg: 0 }, valid: { cex: 0, pg: 0 }, test: { cex: 0, pg: 0 } };
  for (const f of files) counts[f.split][f.label]++;
  const lines = files.map((f) => `${f.split}\t${f.label}\t${f.path}\t${f.sha256}`).sort();
  const set: FineTuneSet = {
    root,
    layout: data.layout,
    files,
    counts,
    fileListSha256: sha256(Buffer.from(lines.join('\n'))),
    unreadable: data.unreadable,
    splitFrom: presplit ? 'folders' : { shares: split, seed: o.splitSeed },
  };
  checkTestSplit(folder, set, min);
  return set;
}

/** Refuse a labelled set whose test split cannot carry figures: the folder, its counts and the fix. */
export function checkTestSplit(folder: string, set: Pick<FineTuneSet, 'counts' | 'splitFrom' | 'layout'>, min: number): void {
  const { test } = set.counts;
  if (test.cex >= min && test.pg >= min) return;
  const total = (label: 'cex' | 'pg') => set.counts.train[label] + set.counts.valid[label] + set.counts.test[label];
  const all = { cex: total('cex'), pg: total('pg') };
  const fix =
    set.splitFrom === 'folders'
      ? `put at least ${min} CEX and ${min} PG images in its test/ folder`
      : `add labelled images: with ${set.splitFrom.shares.join('/')} train/valid/test shares that is at least ${Math.ceil((min * set.splitFrom.shares.reduce((a, b) => a + b, 0)) / set.splitFrom.shares[2])} of each class`;
  throw new CalibrationInputError(
    `--fine-tune ${folder}: too few labelled images to hold out a test split: ${all.cex} CEX and ${all.pg} PG (${set.layout}) leave ${test.cex} CEX and ${test.pg} PG in the held-out test split; fine-tuning needs at least ${min} of each class there, so that its figures come from images it neither trained on nor was calibrated on: ${fix}, or calibrate without --fine-tune`,
  );
}

/**
 * Calibration images that are also fine-tuning images (same content): refused, or — with
 * `exclude` — returned (content sha256 → why) for calibrate to leave out.
 */
export async function checkCalibrationOverlap(
  set: FineTuneSet,
  folders: { flag: '--clean' | '--pg'; folder: string }[],
  exclude: boolean,
): Promise<{ excluded: Map<string, string>; overlapping: { path: string; fineTunePath: string; split: SplitName }[] }> {
  const bySha = new Map(set.files.map((f) => [f.sha256, f]));
  const overlapping: { path: string; fineTunePath: string; split: SplitName; sha256: string; flag: string; folder: string }[] = [];
  for (const { flag, folder } of folders) {
    for (const path of await listImages(folder, flag)) {
      const f = bySha.get(sha256(await readFile(path)));
      if (f) overlapping.push({ path, fineTunePath: f.path, split: f.split, sha256: f.sha256, flag, folder });
    }
  }
  const first = overlapping[0];
  if (first && !exclude) {
    const where = [...new Set(overlapping.map((x) => `${x.flag} ${x.folder}`))].join(', ');
    throw new CalibrationInputError(
      `${where}: ${overlapping.length} image(s) are also in the fine-tuning set --fine-tune ${set.root} (same content), e.g. ${relative(first.folder, first.path)} = ${first.fineTunePath} (${first.split} split); calibration must not fit on, or measure on, images the model is fine-tuned or tested on: remove them from the calibration folders, or pass --exclude-fine-tune-images to calibrate without them`,
    );
  }
  const excluded = new Map<string, string>();
  for (const x of overlapping) excluded.set(x.sha256, `also fine-tuning image ${x.fineTunePath} (${x.split} split)`);
  return { excluded, overlapping };
}
