/**
 * What a calibration says about itself: the report's content (report.json), the summary the
 * card's `calibration.provenance` carries, and — as plainly as the figures — what it could not
 * establish from the images it was given.
 */
import type { CalibrationInputs, ImageFile } from './calibrate-inputs.js';
import type { ScoredImage } from './calibrate-score.js';
import type { CameraOodFit, ThresholdChoice } from './calibrate-fit.js';
import type { CalibratedDetector } from './calibrate-detector.js';
import type { CardFigures } from './calibrate-figures.js';
import type { ParentModel } from './calibrate-card.js';
import type { EmbeddingMap } from './calibrate-embedding.js';
import type { FineTuneSection } from './calibrate-finetune-report.js';

export interface CalibrationReport {
  title: string;
  calibratedAt: string;
  command?: string;
  camera: string | null;
  model: {
    parent: { dir: string; name: string; version: string; cardSha256: string; calibration: string };
    calibrated: { dir: string; name: string; version: string };
  };
  inputs: {
    kind: 'crops' | 'frames';
    frameSize: { width: number; height: number } | null;
    modelInputsPerImage: number;
    fps: { value: number; source: string };
    clean: { folders: string[]; images: number; fit: number; heldOut: number; refusedByGates: Record<string, number> };
    /** Calibration images left out because they are fine-tuning images (--exclude-fine-tune-images). */
    excludedFineTuneImages: { path: string; reason: string }[];
    pg: { folders: string[]; images: number; refusedByGates: Record<string, number> } | null;
    skippedUnreadable: { path: string; reason: string }[];
    fileListSha256: string;
  };
  targets: {
    maxFalsePositiveRate: number;
    source: 'stated' | 'default';
    confidence: number;
    framesForTarget: number;
    established: boolean;
    targetArlFrames: number;
  };
  threshold: { before: number; after: number; fitFalsePositives: number; fitFrames: number; upperBound: number };
  ood: {
    before: { threshold: number | null; classes: string[] };
    /** Null for a model without an embedding output. */
    after: {
      threshold: number;
      thresholdFrom: 'camera' | 'parent';
      cameraBound: number;
      classes: string[];
      shrinkage: number;
      modelInputs: number;
      outOfFold: { images: number; median: number; max: number };
    } | null;
  };
  detector: Omit<CalibratedDetector, 'llr'> & { claim: string };
  before: CardFigures;
  after: CardFigures;
  /** The embedding map (PCA of simulator and plant embeddings); null for a model without an embedding output. */
  embeddingMap: EmbeddingMap | null;
  /** The fine-tuning this calibration follows (--fine-tune); its figures are on its held-out test split only. */
  fineTune: FineTuneSection | null;
  /** What this calibration could not establish, in words. */
  couldNot: string[];
  provenance: Record<string, unknown>;
}

export interface BuildReportInput {
  parent: ParentModel;
  outDir: string;
  version: string;
  inputs: CalibrationInputs;
  inputsPerImage: number;
  scored: ScoredImage[];
  fit: ImageFile[];
  heldOut: ImageFile[];
  choice: ThresholdChoice;
  target: { rate: number; source: 'stated' | 'default'; confidence: number };
  oodFit?: CameraOodFit;
  detector: CalibratedDetector;
  before: CardFigures;
  after: CardFigures;
  calibratedAt: string;
  command?: string;
  skippedUnreadable: { path: string; reason: string }[];
  embeddingMap?: EmbeddingMap | null;
  fineTune?: FineTuneSection;
}

const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
const parentHasOod = (i: BuildReportInput) => i.parent.card.ood !== undefined;
const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(v < 0.01 && v > 0 ? 2 : 1)} %`);

function refusals(scored: ScoredImage[], role: 'clean' | 'pg'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of scored) if (s.file.role === role && !s.inputs) out[s.refused?.reason ?? 'unreadable'] = (out[s.refused?.reason ?? 'unreadable'] ?? 0) + 1;
  return out;
}

/** "1 false alarm per N batch-days" in words; N = Infinity is "none expected". */
export function claimOf(f: CardFigures['detector']): string {
  const days = f.batchDaysPerFalseAlarm;
  if (!Number.isFinite(days)) return `no false alarm expected from these clean scores at ${f.fps} frames/s`;
  const n = days >= 10 ? Math.floor(days).toLocaleString('en-US') : days.toPrecision(2);
  const hours = days < 2 ? ` (${Math.round(days * 24 * 10) / 10} h of this camera)` : '';
  return `≤ 1 false alarm per ${n} batch-days${hours} at ${f.fps} frames/s (mean ${f.arl0Frames.toLocaleString('en-US')} clean frames between false alarms)`;
}

function couldNot(i: BuildReportInput): string[] {
  const out: string[] = [];
  const { after, before, target, choice, inputs } = i;
  if (inputs.pg.length === 0) {
    out.push(
      "No PG images given: recall on this camera is unknown, and the detection delay is the detector's PG model's (frames at P(PG) near 1), not measured. Add --pg with lab-confirmed PG frames of this camera.",
    );
  }
  if (!choice.established) {
    out.push(
      `The target false-positive rate ${pct(target.rate)} (${target.source}) needs at least ${choice.framesForTarget} usable clean fitting images to be shown at ${target.confidence * 100} % confidence; with ${choice.fitFrames} the threshold sits just above the highest clean fitting score, which shows only a rate ≤ ${pct(choice.upperBound)}.`,
    );
  }
  const h = after.heldOut;
  if (h.usable > 0 && h.upperBound95 !== null && h.upperBound95 > target.rate) {
    out.push(
      `${h.pg} of ${h.usable} held-out clean images were judged PG (${pct(h.rate)}): so few held-out images show only that the rate is ≤ ${pct(h.upperBound95)} (95 %), not that it is within ${pct(target.rate)}; about ${Math.ceil(Math.log(0.05) / Math.log(1 - target.rate))} held-out images without a false positive would.`,
    );
  }
  if (!i.oodFit) {
    out.push('The model has no embedding output: no out-of-distribution statistics could be fitted; only the model-free probe gate guards what is judged.');
  } else if (i.oodFit.thresholdFrom === 'parent') {
    out.push(
      `The out-of-distribution threshold stays the parent card's (${r4(i.oodFit.stats.threshold)}): this camera's clean images score at most ${r4(Math.max(...i.oodFit.outOfFoldScores))} out of fold, but no clean image shows how far PG-bearing frames of this camera score, so the gate was not made stricter; a changed camera is caught only once it scores above ${r4(i.oodFit.stats.threshold)}.`,
    );
  } else if (i.oodFit.outOfFoldScores.length < 1000) {
    const n = i.oodFit.outOfFoldScores.length;
    out.push(
      `With ${n} fitting images the out-of-distribution threshold is the largest out-of-fold score × 1.1, not a percentile: a clean frame rarer than about 1 in ${n} may be refused as out-of-distribution (watch crystalwatch_frames_unusable_total{reason="out-of-distribution"}).`,
    );
  }
  if (i.oodFit && !parentHasOod(i))
    out.push(
      "The parent card has no out-of-distribution statistics: the calibrated gate knows only this camera's clean images, so PG unlike them may be refused; --pg images show how many are.",
    );
  if (h.outOfDistribution > 0)
    out.push(`${h.outOfDistribution} of ${h.images} held-out clean images are refused as out-of-distribution by the calibrated gate.`);
  if (after.pgImages && before.pgImages && after.pgImages.outOfDistribution > before.pgImages.outOfDistribution) {
    out.push(
      `The calibrated gate refuses ${after.pgImages.outOfDistribution} of ${after.pgImages.images} PG images as out-of-distribution (the parent card ${before.pgImages.outOfDistribution}): PG that looks unlike this camera's clean frames and unlike the model's PG is not judged.`,
    );
  }
  if (inputs.fps.source === 'default')
    out.push(`No capture times in sidecars or file names: the false-alarm figures assume ${inputs.fps.value} frames/s; pass --fps with the camera's rate.`);
  if (!Number.isFinite(after.detector.heldOutArl0Frames)) {
    out.push(
      `No held-out clean frame gave the detector evidence for PG, so its false-alarm figure is the fitted clean-score model's (${after.detector.modelArl0Frames.toLocaleString('en-US')} frames between false alarms, the 10th percentile over bootstrap refits), not one observed.`,
    );
  }
  if (new Set(inputs.clean.map((f) => f.folder)).size === 1) {
    out.push(
      'All clean images come from one folder (one batch, most likely): another batch of this camera may put more clean frames at high P(PG) than this one did, which raises both the false-positive rate and the false alarms; calibrate on clean frames of several batches (several --clean folders) where you can.',
    );
  }
  if (!i.embeddingMap) out.push('The model has no embedding output: no embedding map of simulator and plant images could be drawn.');
  if (i.fineTune) {
    const t = i.fineTune.fileCounts.test;
    out.push(
      `The fine-tuned model's figures rest on ${t.cex} CEX and ${t.pg} PG held-out crops of ${i.fineTune.folder}: a recall or precision of 1 there shows only that the rate is at least ${pct(1 - 3 / Math.max(1, Math.min(t.cex, t.pg)))} (95 %); the calibration's own figures above are on the clean and PG folders, which share no image with the fine-tuning set.`,
    );
  }
  out.push(
    'The detector figures take frames as independent draws; consecutive frames of a slowly stirred slurry are not, so runs of high clean scores are likelier than assumed.',
  );
  out.push(
    'The monitor process (`crystalwatch run`, `demo`) reads this clean-score model from the card\'s detector field when the model is in force and `alert.detector` is `cusum`; without it, the detector runs its default model, whose figures on this camera are the "before" column.',
  );
  out.push(
    'Recalibrate after changing the probe, lamp, window, magnification or exposure: the fits describe this camera as it was when these images were taken.',
  );
  return out;
}

export function buildReport(i: BuildReportInput): CalibrationReport {
  const { parent, inputs, choice, oodFit, detector, before, after } = i;
  const oof = [...(oodFit?.outOfFoldScores ?? [])].sort((a, b) => a - b);
  const cleanFolders = [...new Set(inputs.clean.map((f) => f.folder))];
  const pgFolders = [...new Set(inputs.pg.map((f) => f.folder))];
  const { llr: _table, ...detectorSummary } = detector;
  const targets = {
    maxFalsePositiveRate: i.target.rate,
    source: i.target.source,
    confidence: i.target.confidence,
    framesForTarget: choice.framesForTarget,
    established: choice.established,
    targetArlFrames: detector.targetArlFrames,
  };
  const report: CalibrationReport = {
    title: `Calibration of ${parent.card.name}@${parent.card.version} on ${inputs.camera ? `camera ${inputs.camera}` : 'this camera'}`,
    calibratedAt: i.calibratedAt,
    ...(i.command ? { command: i.command } : {}),
    camera: inputs.camera ?? null,
    model: {
      parent: {
        dir: parent.dir,
        name: parent.card.name,
        version: parent.card.version,
        cardSha256: parent.sha256,
        calibration: parent.card.calibration?.status ?? 'none recorded',
      },
      calibrated: { dir: i.outDir, name: parent.card.name, version: i.version },
    },
    inputs: {
      kind: inputs.kind,
      frameSize: inputs.frameSize ?? null,
      modelInputsPerImage: i.inputsPerImage,
      fps: { value: Math.round(inputs.fps.value * 1e4) / 1e4, source: inputs.fps.source },
      clean: { folders: cleanFolders, images: inputs.clean.length, fit: i.fit.length, heldOut: i.heldOut.length, refusedByGates: refusals(i.scored, 'clean') },
      pg: inputs.pg.length ? { folders: pgFolders, images: inputs.pg.length, refusedByGates: refusals(i.scored, 'pg') } : null,
      skippedUnreadable: i.skippedUnreadable,
      excludedFineTuneImages: inputs.excluded,
      fileListSha256: inputs.fileListSha256,
    },
    targets,
    threshold: {
      before: parent.card.threshold,
      after: choice.threshold,
      fitFalsePositives: choice.fitFalsePositives,
      fitFrames: choice.fitFrames,
      upperBound: r4(choice.upperBound),
    },
    ood: {
      before: {
        threshold: before.oodThreshold,
        classes: parent.card.ood ? ((parent.card.ood.classes as { name?: string }[] | undefined) ?? []).map((c) => c.name ?? '?') : [],
      },
      after: oodFit
        ? {
            threshold: r4(oodFit.stats.threshold),
            thresholdFrom: oodFit.thresholdFrom,
            cameraBound: r4(oodFit.cameraBound),
            classes: oodFit.stats.classes.map((c) => c.name),
            shrinkage: r4(oodFit.shrinkage),
            modelInputs: oodFit.inputs,
            outOfFold: { images: oof.length, median: r4(oof[Math.floor(oof.length / 2)] ?? NaN), max: r4(oof[oof.length - 1] ?? NaN) },
          }
        : null,
    },
    detector: { ...detectorSummary, claim: claimOf(after.detector) },
    before,
    after,
    embeddingMap: i.embeddingMap ?? null,
    fineTune: i.fineTune ?? null,
    couldNot: couldNot(i),
    provenance: {},
  };
  report.provenance = {
    sources: { clean: cleanFolders, pg: pgFolders },
    fileCounts: {
      clean: inputs.clean.length,
      cleanFit: i.fit.length,
      cleanHeldOut: i.heldOut.length,
      cleanFitUsable: choice.fitFrames,
      pg: inputs.pg.length,
      skippedUnreadable: i.skippedUnreadable.length,
      excludedFineTuneImages: inputs.excluded.length,
    },
    fileListSha256: inputs.fileListSha256,
    parentCardSha256: parent.sha256,
    parent: `${parent.card.name}@${parent.card.version}`,
    parentDir: parent.dir,
    targets: { ...targets, fps: report.inputs.fps.value, fpsSource: inputs.fps.source, heldOutShare: r4(i.heldOut.length / Math.max(1, inputs.clean.length)) },
    figures: {
      threshold: { before: parent.card.threshold, after: choice.threshold },
      heldOutFalsePositiveRate: {
        before: before.heldOut.rate,
        after: after.heldOut.rate,
        afterUpperBound95: after.heldOut.upperBound95,
        images: after.heldOut.images,
      },
      heldOutOutOfDistribution: { before: before.heldOut.outOfDistribution, after: after.heldOut.outOfDistribution },
      pgRecall: after.pgImages && before.pgImages ? { before: before.pgImages.rate, after: after.pgImages.rate, images: after.pgImages.images } : null,
      detectorFalseAlarmsPer100kFrames: { before: before.detector.falseAlarmsPer100kFrames, after: after.detector.falseAlarmsPer100kFrames },
      batchDaysPerFalseAlarm: { before: before.detector.batchDaysPerFalseAlarm, after: after.detector.batchDaysPerFalseAlarm },
      delayFrames: { before: before.detector.delayFrames, after: after.detector.delayFrames, source: after.detector.delaySource },
      claim: report.detector.claim,
    },
    ...(i.command ? { command: i.command } : {}),
    report: 'report.md',
  };
  return report;
}
