/**
 * What the report and the card say about a fine-tuning: where its images came from, how it
 * was trained, and its figures — all on the held-out test split of the fine-tuning set, which
 * was neither trained on, nor used to pick the epoch, nor calibrated on. Pure: outcomes in,
 * numbers and lines out.
 */
import type { AugmentOptions } from './augment.js';
import type { ClassCounts, FineTuneSet } from './calibrate-finetune-data.js';
import type { Outcome } from './calibrate-figures.js';
import type { MapSetEmbeddings } from './calibrate-embedding.js';
import type { OodStats } from './ood.js';

/** One card's figures on the labelled held-out crops, as the classify stage judges them (OOD-refused ones are not judged). */
export interface LabelledFigures {
  card: string;
  threshold: number;
  images: number;
  judged: number;
  outOfDistribution: number;
  refusedByGates: number;
  confusion: { tp: number; fp: number; tn: number; fn: number };
  precision: number | null;
  recall: number | null;
  f1: number | null;
  accuracy: number | null;
}

export interface FineTuneSection {
  folder: string;
  layout: string;
  fileCounts: { train: ClassCounts; valid: ClassCounts; test: ClassCounts; unreadable: number; excludedFromCalibration: number };
  fileListSha256: string;
  split: FineTuneSet['splitFrom'];
  epochs: { planned: number; run: number; best: number };
  learningRate: number;
  batchSize: number;
  seed: number;
  augment: AugmentOptions;
  backend: string;
  trainingSeconds: number;
  parent: { dir: string; name: string; version: string; cardSha256: string };
  /** The fine-tuned model before calibration, with train's held-out report, inside the new folder. */
  fineTunedModel: string;
  heldOut: {
    split: 'test';
    images: number;
    /** The model fine-tuning started from, with its own card (threshold, OOD gate). */
    parent: LabelledFigures;
    /** The fine-tuned model as `train` reports it (TF.js, threshold 0.5, no gate). */
    fineTuned: {
      threshold: number;
      f1: number | null;
      precision: number | null;
      recall: number | null;
      accuracy: number | null;
      auc: number | null;
      support: number;
    };
    /** The calibrated card, loaded as production loads it. */
    calibrated: LabelledFigures | null;
  };
  /** File names (relative to the folder) per split: report.json only, not the card. */
  files?: { train: string[]; valid: string[]; test: string[] };
}

const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 1e4) / 1e4 : null);

export function labelledFigures(card: string, threshold: number, outcomes: readonly Outcome[], labels: readonly ('cex' | 'pg')[]): LabelledFigures {
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  let ood = 0;
  let refused = 0;
  outcomes.forEach((o, i) => {
    const pg = labels[i] === 'pg';
    if (o.verdict === 'out-of-distribution') ood++;
    else if (o.verdict === 'refused' || o.verdict === 'error') refused++;
    else if (o.verdict === 'pg') c[pg ? 'tp' : 'fp']++;
    else c[pg ? 'fn' : 'tn']++;
  });
  const judged = c.tp + c.fp + c.tn + c.fn;
  const precision = ratio(c.tp, c.tp + c.fp);
  const recall = ratio(c.tp, c.tp + c.fn);
  const f1 = precision !== null && recall !== null && precision + recall > 0 ? Math.round(((2 * precision * recall) / (precision + recall)) * 1e4) / 1e4 : null;
  return {
    card,
    threshold,
    images: outcomes.length,
    judged,
    outOfDistribution: ood,
    refusedByGates: refused,
    confusion: c,
    precision,
    recall,
    f1,
    accuracy: ratio(c.tp + c.tn, judged),
  };
}

/** The card's `calibration.fineTune`: the section without the file lists. */
export function cardFineTune(s: FineTuneSection): Omit<FineTuneSection, 'files'> {
  const { files: _files, ...rest } = s;
  return rest;
}

const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
const counts = (c: ClassCounts) => `${c.cex} CEX + ${c.pg} PG`;

function row(name: string, x: LabelledFigures): string {
  const { tp, fp, tn, fn } = x.confusion;
  return `| ${name} | ${x.threshold} | ${x.judged}/${x.images} (${x.outOfDistribution} out-of-distribution, ${x.refusedByGates} refused) | ${f(x.precision)} | ${f(x.recall)} | ${f(x.f1)} | ${f(x.accuracy)} | TP ${tp} FP ${fp} TN ${tn} FN ${fn} |`;
}

/** report.md's fine-tuning section. */
export function fineTuneMarkdown(s: FineTuneSection): string[] {
  const h = s.heldOut;
  const ft = h.fineTuned;
  return [
    '## Fine-tuning',
    '',
    `Continued training of ${s.parent.name}@${s.parent.version} (card sha256 ${s.parent.cardSha256.slice(0, 16)}…, ${s.parent.dir}) on the labelled images in ${s.folder} (${s.layout}): ${s.epochs.run} of ${s.epochs.planned} epochs (epoch ${s.epochs.best} kept, chosen on the validation split), learning rate ${s.learningRate} (cosine decay), batch ${s.batchSize}, seed ${s.seed}, augmentation as \`crystalwatch train\` (${JSON.stringify(s.augment)}), ${s.backend}, ${s.trainingSeconds} s.`,
    '',
    `- Split ${s.split === 'folders' ? 'given by the train/ valid/ test/ folders' : `${s.split.shares.join('/')} (train/valid/test), stratified, duplicate groups kept whole, seed ${s.split.seed}`}: train ${counts(s.fileCounts.train)}, valid ${counts(s.fileCounts.valid)}, test ${counts(s.fileCounts.test)}${s.fileCounts.unreadable ? `; ${s.fileCounts.unreadable} unreadable skipped` : ''}. File list sha256 ${s.fileListSha256}; the names per split are in report.json (\`fineTune.files\`).`,
    `- Calibration images that are also fine-tuning images: ${s.fileCounts.excludedFromCalibration ? `${s.fileCounts.excludedFromCalibration} left out of calibration (--exclude-fine-tune-images)` : 'none'}.`,
    `- The fine-tuned model before calibration, with its held-out report, is in \`${s.fineTunedModel}\`.`,
    '',
    `Figures on the held-out test split only (${h.images} images the model was neither fine-tuned on, nor selected on, nor calibrated on):`,
    '',
    '| model | threshold | judged | precision (PG) | recall (PG) | F1 (PG) | accuracy | confusion |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    row(`before: ${h.parent.card}`, h.parent),
    `| fine-tuned, before calibration (crystalwatch train's report: TF.js, no gate) | ${ft.threshold} | ${ft.support}/${h.images} | ${f(ft.precision)} | ${f(ft.recall)} | ${f(ft.f1)} | ${f(ft.accuracy)} | AUC ${f(ft.auc)} |`,
    ...(h.calibrated ? [row(`after: ${h.calibrated.card}`, h.calibrated)] : []),
    '',
  ];
}

/** What calibrateWithFineTune hands calibrate (CalibrateOptions.fineTune). */
export interface FineTuneContext {
  /** heldOut.calibrated is filled in by calibrate, from the new folder. */
  section: FineTuneSection;
  /** The held-out test crops (absolute paths), classified with the calibrated card. */
  heldOut: { path: string; label: 'cex' | 'pg' }[];
  /** Content sha256 → why: calibration images left out (fine-tuning images). */
  exclude: ReadonlyMap<string, string>;
  /** The embedding map's panel of the model before fine-tuning. */
  baseline?: { model: string; sets: MapSetEmbeddings[]; ood?: OodStats };
  /** The --out sub-folder holding the fine-tuned model calibrate starts from. */
  parentSubfolder: string;
}
