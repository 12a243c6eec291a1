/**
 * `crystalwatch calibrate --fine-tune DIR`: continue training the model on labelled images of
 * this camera, then calibrate the fine-tuned model on the clean (and PG) folders as usual.
 *
 *   check the labelled set (calibrate-finetune-data: layout, the split train will use, a test
 *   split large enough to report on, no image shared with the calibration folders) → judge the
 *   held-out test crops with the parent model, and embed a sample of the plant's images with it
 *   (the embedding map's "before fine-tuning" panel) → `train --init <model>` into
 *   `<out>/fine-tune/` (few epochs, low learning rate, train's augmentation and epoch selection
 *   on the validation split; TF.js + ONNX) → calibrate that model into `<out>`, which also
 *   judges the held-out test crops with the calibrated card.
 *
 * Every fine-tuning figure is on the held-out test split; the calibration folders share no
 * image with the fine-tuning set (refused, or left out with --exclude-fine-tune-images).
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Classifier } from '../classify/classifier.js';
import type { BackendChoice } from '../classify/backends/index.js';
import { calibrate, outcomeOf, type CalibrateOptions, type CalibrateResult } from './calibrate.js';
import { checkOutDir, readParent, type ParentModel } from './calibrate-card.js';
import { CalibrationInputError, listImages } from './calibrate-inputs.js';
import { checkCalibrationOverlap, FINE_TUNE_SPLIT, readFineTuneSet, type FineTuneSet } from './calibrate-finetune-data.js';
import { labelledFigures, type FineTuneContext, type FineTuneSection, type LabelledFigures } from './calibrate-finetune-report.js';
import { embedAll, embedSimulatorReference, evenly, type MapSetEmbeddings } from './calibrate-embedding.js';
import { DEFAULT_AUGMENT, NO_AUGMENT, type AugmentOptions } from './augment.js';
import { readOodStats } from './ood-card.js';
import type { Outcome } from './calibrate-figures.js';

export const FINE_TUNE_DEFAULTS = { epochs: 3, lr: 1e-4, batchSize: 32, seed: 1 } as const;
/** The --out sub-folder holding the fine-tuned model before calibration. */
export const FINE_TUNE_FOLDER = 'fine-tune';
/** Plant images per set embedded with the parent model for the map's "before fine-tuning" panel. */
const BASELINE_IMAGES_PER_SET = 40;

export interface FineTuneOptions {
  /** Labelled images of this camera: cex/ + pg/ or 0/ + 1/ (optionally inside train/ valid/ test/). */
  data: string;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  /** Seed of the split, initialisation order, shuffling and augmentation. */
  seed?: number;
  /** Train/valid/test shares for a folder without train/ valid/ test/ (default FINE_TUNE_SPLIT). */
  split?: [number, number, number];
  minTestPerClass?: number;
  /** Leave calibration images that are also fine-tuning images out, instead of refusing. */
  excludeOverlap?: boolean;
  augment?: AugmentOptions | false;
  /** train's own progress lines (epochs, batches). */
  log?: (line: string, final: boolean) => void;
}

export interface FineTuneResult extends CalibrateResult {
  fineTune: FineTuneSection;
}

/** The CrystalNet settings train needs to rebuild the parent's graph; refused for a model train did not write. */
function crystalNetOf(parent: ParentModel): { inputSize: number; width: number; norm: 'batch' | 'none'; dropout: number } {
  const a = parent.raw.architecture as { inputSize?: number; width?: number; normalization?: string } | undefined;
  const dropout = (parent.raw.provenance as { dropout?: number } | undefined)?.dropout ?? 0.3;
  if (!parent.card.files?.tfjs || typeof a?.inputSize !== 'number' || typeof a.width !== 'number') {
    throw new CalibrationInputError(
      `--fine-tune: the model ${parent.dir} has no TF.js weights and CrystalNet architecture in its card (files.tfjs, architecture.inputSize/width); fine-tuning continues training a model written by crystalwatch train (such as models/default). For another model, retrain it in its own framework, then calibrate it without --fine-tune`,
    );
  }
  return { inputSize: a.inputSize, width: a.width, norm: a.normalization === 'none' ? 'none' : 'batch', dropout };
}

/** The parent model on the held-out crops (as production judges them), and its embeddings for the map. */
async function judgeWithParent(
  parent: ParentModel,
  heldOut: { path: string; label: 'cex' | 'pg' }[],
  plant: { set: 'plant clean' | 'plant PG'; paths: string[] }[],
  backend: BackendChoice | undefined,
  progress: (phase: string, done: number, total: number) => void,
): Promise<{ figures: LabelledFigures; baseline?: FineTuneContext['baseline'] }> {
  const classifier = await Classifier.load(parent.dir, { backend, maxBatchSize: 64 });
  try {
    const outcomes: Outcome[] = [];
    for (let i = 0; i < heldOut.length; i += 8) {
      const bytes = await Promise.all(heldOut.slice(i, i + 8).map((f) => readFile(f.path)));
      outcomes.push(...(await classifier.classify(bytes)).map(outcomeOf));
      progress('judging the held-out crops with the parent model', Math.min(i + 8, heldOut.length), heldOut.length);
    }
    const name = `${parent.card.name}@${parent.card.version}`;
    const figures = labelledFigures(
      `${name} (parent card)`,
      parent.card.threshold,
      outcomes,
      heldOut.map((f) => f.label),
    );
    const reference = await embedSimulatorReference(classifier);
    if (!reference) return { figures };
    const sets: MapSetEmbeddings[] = [...reference];
    for (const p of plant) {
      const bytes = await Promise.all(evenly(p.paths, BASELINE_IMAGES_PER_SET).map((path) => readFile(path)));
      sets.push({ set: p.set, embeddings: (await embedAll(classifier, bytes)).flat() });
    }
    const ood = parent.card.ood ? readOodStats(parent.card.ood).stats : undefined;
    return { figures, baseline: { model: name, sets, ood } };
  } finally {
    await classifier.close();
  }
}

/** The fine-tuned card keeps the parent's name and version (calibration bumps it) and says where it came from. */
async function markFineTunedCard(dir: string, parent: ParentModel, set: FineTuneSet): Promise<void> {
  const path = join(dir, 'card.json');
  const card = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  card.name = parent.card.name;
  card.version = parent.card.version;
  card.calibration = {
    status: 'uncalibrated',
    note: `fine-tuned from ${parent.card.name}@${parent.card.version} on ${set.root} by crystalwatch calibrate --fine-tune; the calibrated model is the folder above this one`,
  };
  card.provenance = {
    ...(card.provenance as Record<string, unknown>),
    fineTunedFrom: { dir: parent.dir, name: parent.card.name, version: parent.card.version, cardSha256: parent.sha256 },
    fineTuneFileListSha256: set.fileListSha256,
  };
  await writeFile(path, `${JSON.stringify(card, null, 2)}\n`);
}

export async function calibrateWithFineTune(o: CalibrateOptions & { fineTuneWith: FineTuneOptions }): Promise<FineTuneResult> {
  const ft = o.fineTuneWith;
  const progress = o.progress ?? (() => {});
  const epochs = ft.epochs ?? FINE_TUNE_DEFAULTS.epochs;
  const lr = ft.lr ?? FINE_TUNE_DEFAULTS.lr;
  const batchSize = ft.batchSize ?? FINE_TUNE_DEFAULTS.batchSize;
  const seed = ft.seed ?? FINE_TUNE_DEFAULTS.seed;
  if (!(Number.isInteger(epochs) && epochs >= 1)) throw new CalibrationInputError(`--fine-tune-epochs must be a positive integer, got ${epochs}`);
  if (!(lr > 0 && lr < 1)) throw new CalibrationInputError(`--fine-tune-lr must be a learning rate in (0, 1) such as 1e-4, got ${lr}`);
  const parent = await readParent(o.model);
  const arch = crystalNetOf(parent);
  const outDir = await checkOutDir(o.out, parent.dir);
  const outExisted = await stat(outDir).then(
    () => true,
    () => false,
  );
  // The same shares (and seed) for the check and for train, so both carve the same split.
  const shares = ft.split ?? FINE_TUNE_SPLIT;
  const set = await readFineTuneSet(ft.data, {
    inputSize: arch.inputSize,
    splitSeed: seed,
    split: shares,
    minTestPerClass: ft.minTestPerClass,
    onProgress: (d, t) => progress('reading the fine-tuning images', d, t),
  });
  const folders = [...o.clean.map((folder) => ({ flag: '--clean' as const, folder })), ...(o.pg ?? []).map((folder) => ({ flag: '--pg' as const, folder }))];
  const overlap = await checkCalibrationOverlap(set, folders, ft.excludeOverlap ?? false);
  if (overlap.overlapping.length > 0)
    ft.log?.(
      `left out ${overlap.overlapping.length} calibration image(s) that are also fine-tuning images (--exclude-fine-tune-images); listed in report.json`,
      true,
    );
  const heldOut = set.files.filter((f) => f.split === 'test').map((f) => ({ path: join(set.root, f.path), label: f.label }));
  const overlapping = new Set(overlap.overlapping.map((x) => x.path));
  const plant = [
    { set: 'plant clean' as const, paths: (await Promise.all(o.clean.map((f) => listImages(f, '--clean')))).flat().filter((p) => !overlapping.has(p)) },
    { set: 'plant PG' as const, paths: (await Promise.all((o.pg ?? []).map((f) => listImages(f, '--pg')))).flat().filter((p) => !overlapping.has(p)) },
  ];
  const before = await judgeWithParent(parent, heldOut, plant, o.backend, progress);

  const work = join(outDir, FINE_TUNE_FOLDER);
  try {
    const { train } = await import('./train.js');
    const trained = await train({
      data: set.root,
      out: work,
      init: parent.dir,
      epochs,
      lr,
      batchSize,
      seed,
      splitSeed: seed,
      split: shares,
      patience: epochs,
      ...arch,
      augment: ft.augment,
      name: parent.card.name,
      ...(o.command ? { command: o.command } : {}),
      progress: (line, final) => {
        ft.log?.(line, final);
        const m = final ? /^epoch (\d+)\/(\d+) loss/.exec(line) : null;
        if (m) progress('fine-tuning (epochs)', Number(m[1]), Number(m[2]));
      },
    });
    // train split the folder itself, with the same seed and shares: the same test split, or a bug.
    if (trained.test.support !== heldOut.length)
      throw new Error(`calibrate --fine-tune: train held out ${trained.test.support} crops, the check ${heldOut.length}: a bug, please report it`);
    await markFineTunedCard(work, parent, set);
    const section: FineTuneSection = {
      folder: set.root,
      layout: set.layout,
      fileCounts: { ...set.counts, unreadable: set.unreadable.length, excludedFromCalibration: overlap.overlapping.length },
      fileListSha256: set.fileListSha256,
      split: set.splitFrom,
      epochs: { planned: epochs, run: trained.epochsRun, best: trained.bestEpoch },
      learningRate: lr,
      batchSize,
      seed,
      augment: ft.augment === false ? NO_AUGMENT : (ft.augment ?? DEFAULT_AUGMENT),
      backend: trained.backend,
      trainingSeconds: Math.round(trained.trainSeconds * 10) / 10,
      parent: { dir: parent.dir, name: parent.card.name, version: parent.card.version, cardSha256: parent.sha256 },
      fineTunedModel: `${FINE_TUNE_FOLDER}/`,
      heldOut: {
        split: 'test',
        images: heldOut.length,
        parent: before.figures,
        fineTuned: {
          threshold: 0.5,
          f1: trained.test.f1,
          precision: trained.test.precision,
          recall: trained.test.recall,
          accuracy: trained.test.accuracy,
          auc: trained.test.auc,
          support: trained.test.support,
        },
        calibrated: null,
      },
      files: {
        train: set.files.filter((f) => f.split === 'train').map((f) => f.path),
        valid: set.files.filter((f) => f.split === 'valid').map((f) => f.path),
        test: set.files.filter((f) => f.split === 'test').map((f) => f.path),
      },
    };
    const result = await calibrate({
      ...o,
      model: work,
      fineTune: { section, heldOut, exclude: overlap.excluded, baseline: before.baseline, parentSubfolder: FINE_TUNE_FOLDER },
    });
    return { ...result, fineTune: result.report.fineTune! };
  } catch (err) {
    // calibrate removes the folder it failed to fill; a failed training removes what it wrote.
    await rm(outExisted ? work : outDir, { recursive: true, force: true });
    throw err;
  }
}
