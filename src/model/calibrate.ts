/**
 * `crystalwatch calibrate`: commission a model on one camera from images the plant already has.
 *
 *   read and check the folders (calibrate-inputs) → score every image once through the classify
 *   stage's Classifier (calibrate-score) → hold out the latest share of the clean images → fit,
 *   on the rest, the OOD statistics and the operating threshold (calibrate-fit) and the
 *   detector's clean-score model (calibrate-detector) → write the new model folder
 *   (calibrate-card) → load it like production does and classify the held-out and PG images
 *   with it → figures before and after (calibrate-figures) → the embedding map of simulator and
 *   plant images (calibrate-embedding) → report (calibrate-report).
 *
 * With --fine-tune, calibrate-finetune.ts trains first and calls this with the fine-tuned model
 * and `fineTune`: its held-out test crops are judged here too, with the calibrated card.
 *
 * No figure called held-out is measured on an image used for fitting.
 */
import { rm } from 'node:fs/promises';
import { Classifier, DEFAULT_TILE } from '../classify/classifier.js';
import type { BackendChoice } from '../classify/backends/index.js';
import { cusumAverageRunLength, cusumThresholdForArl, DEFAULT_CUSUM_MODEL } from '../alert/detector.js';
import {
  CalibrationInputError,
  MIN_CLEAN_IMAGES,
  readInputs,
  splitHeldOut,
  unreadableError,
  type CalibrationInputs,
  type ImageFile,
  type TileSpec,
} from './calibrate-inputs.js';
import { checkTileCounts, classifyWith, imageRows, scoreImages, verdict, type ScoredImage } from './calibrate-score.js';
export { outcomeOf } from './calibrate-score.js';
import { chooseThreshold, fitCameraOod, framesForTarget, THRESHOLD_CONFIDENCE, type CameraOodFit, type ThresholdChoice } from './calibrate-fit.js';
import { defaultLlr, fitDetector, llrAt, type CalibratedDetector } from './calibrate-detector.js';
import { cardFigures, type Outcome } from './calibrate-figures.js';
import { checkOutDir, copyWeights, readParent, writeCalibratedCard, type ParentModel } from './calibrate-card.js';
import { buildReport, type CalibrationReport } from './calibrate-report.js';
import { writeCalibrationReport } from './calibrate-report-write.js';
import { readOodStats } from './ood-card.js';
import { buildEmbeddingMap, embedSimulatorReference, plantSets, type MapSetEmbeddings } from './calibrate-embedding.js';
import { cardFineTune, labelledFigures, type FineTuneContext } from './calibrate-finetune-report.js';
import type { OodStats } from './ood.js';
import type { ModelCard } from './card.js';

/**
 * Default per-frame false-positive target: the share of clean frames the detector's own clean
 * model puts at P(PG) ≥ 0.5 — ε0·0.5 + (1 − ε0)·0.5^κ ≈ 0.005 — the spike rate it is designed
 * to absorb within its false-alarm budget.
 */
export const DEFAULT_TARGET_RATE =
  Math.round((DEFAULT_CUSUM_MODEL.spikeRate * 0.5 + (1 - DEFAULT_CUSUM_MODEL.spikeRate) * 0.5 ** DEFAULT_CUSUM_MODEL.sharpness) * 1e4) / 1e4;
export const DEFAULT_HELD_OUT_SHARE = 0.25;
export const DEFAULT_TARGET_ARL_FRAMES = 100_000;

export interface CalibrateOptions {
  model: string;
  clean: string[];
  pg?: string[];
  out: string;
  maxFalsePositiveRate?: number;
  fps?: number;
  camera?: string;
  heldOutShare?: number;
  targetArlFrames?: number;
  skipUnreadable?: boolean;
  backend?: BackendChoice;
  /**
   * How tiled frames run with the calibrated card (recorded in its `ood.frameInference`); default
   * the parent's. `feature-map` costs about a third less CPU per frame; its figures on this
   * camera are in the report like any other (src/classify/README.md, "Feature-map inference").
   */
  frameInference?: 'tiles' | 'feature-map';
  /** The command line, for the card's provenance. */
  command?: string;
  /** Set by calibrateWithFineTune (calibrate-finetune.ts): the fine-tuning this calibration follows. */
  fineTune?: FineTuneContext;
  progress?: (phase: string, done: number, total: number) => void;
}

export interface CalibrateResult {
  outDir: string;
  cardPath: string;
  version: string;
  report: CalibrationReport;
  reportFiles: string[];
}

export function tileSpecOf(card: ModelCard): TileSpec {
  const side = Math.max(card.input.width, card.input.height, DEFAULT_TILE);
  return card.tiling ?? { tile: side, stride: side };
}

function tally(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

/** Enough usable fitting images for calibration at all, and for a stated target. */
function checkFitSet(usable: number, fit: ScoredImage[], o: CalibrateOptions, target: number, share: number): void {
  const minFit = Math.round(MIN_CLEAN_IMAGES * (1 - DEFAULT_HELD_OUT_SHARE));
  if (usable < minFit) {
    const refused = fit.filter((s) => s.pPG === undefined);
    throw new CalibrationInputError(
      `--clean ${o.clean.join(' ')}: only ${usable} of ${fit.length} fitting images passed the model-free gates (refused: ${tally(refused.map((s) => s.refused?.reason ?? 'unreadable'))}); calibration needs ${minFit}: give more clean frames, and check the refused ones are probe images (crystalwatch predict <file> says why)`,
    );
  }
  if (o.maxFalsePositiveRate !== undefined && usable < framesForTarget(target)) {
    const need = framesForTarget(target);
    const reachable = 1 - (1 - THRESHOLD_CONFIDENCE) ** (1 / usable);
    throw new CalibrationInputError(
      `--max-false-positive-rate ${target}: too few clean images to establish it: it needs at least ${need} usable fitting images (about ${Math.ceil(need / (1 - share))} clean images with ${Math.round(share * 100)} % held out), got ${usable} in ${o.clean.join(' ')}; add clean images, or state a rate of at least ${reachable.toPrecision(2)}`,
    );
  }
}

type Progress = NonNullable<CalibrateOptions['progress']>;

/** Everything fitted on the camera's images, before anything is written. */
interface Fitted {
  o: CalibrateOptions;
  parent: ParentModel;
  outDir: string;
  inputs: CalibrationInputs;
  scored: ScoredImage[];
  scoredOf: (files: ImageFile[]) => ScoredImage[];
  /** The same images as the parent model runs them (differs from `scoredOf` for tiled frames of a per-tile parent). */
  scoredBeforeOf: (files: ImageFile[]) => ScoredImage[];
  /** How tiled frames were run for the fit, recorded in the card's `ood.frameInference`. */
  frameInference: 'feature-map' | 'tiles';
  fit: ImageFile[];
  heldOut: ImageFile[];
  fitImages: number;
  undecodable: { path: string; reason: string }[];
  inputsPerImage: number;
  parentOod?: OodStats;
  oodFit?: CameraOodFit;
  choice: ThresholdChoice;
  detector: CalibratedDetector;
  target: number;
  /** The simulator reference set's embeddings through the model (the embedding map). */
  reference?: MapSetEmbeddings[];
}

/** Read, check and score the images; fit OOD statistics, threshold and detector on the fitting share. */
async function fitOnCamera(o: CalibrateOptions, progress: Progress): Promise<Fitted> {
  const share = o.heldOutShare ?? DEFAULT_HELD_OUT_SHARE;
  if (!(share > 0 && share < 1)) throw new CalibrationInputError(`held-out share must be in (0, 1), got ${share}`);
  const target = o.maxFalsePositiveRate ?? DEFAULT_TARGET_RATE;
  if (!(target > 0 && target < 1)) throw new CalibrationInputError(`--max-false-positive-rate must be a rate in (0, 1) such as 0.01, got ${target}`);
  const targetArlFrames = o.targetArlFrames ?? DEFAULT_TARGET_ARL_FRAMES;
  const parent = await readParent(o.model);
  const outDir = await checkOutDir(o.out, parent.dir, o.fineTune?.parentSubfolder);
  const tile = tileSpecOf(parent.card);
  const inputs = await readInputs({
    clean: o.clean,
    pg: o.pg,
    tile,
    fps: o.fps,
    camera: o.camera,
    skipUnreadable: o.skipUnreadable,
    exclude: o.fineTune?.exclude,
    onProgress: (d, t) => progress('reading images', d, t),
  });

  // The parent as production runs it; the fit on the path the calibrated card will run on: the
  // parent's, unless `frameInference` asks for the other (then the "before" figures stay the parent's).
  const images = [...inputs.clean, ...inputs.pg];
  const asShipped = await Classifier.load(parent.dir, { backend: o.backend, maxBatchSize: 64 });
  const parentPath = asShipped.info.frameInference;
  const frameInference = o.frameInference ?? parentPath;
  let scored: ScoredImage[];
  let scoredBefore: ScoredImage[] | undefined;
  let reference: MapSetEmbeddings[] | undefined;
  try {
    let classifier = asShipped;
    if (frameInference !== parentPath) {
      if (inputs.kind === 'frames')
        scoredBefore = await scoreImages(asShipped, images, { onProgress: (d, t) => progress('scoring images as the parent runs them', d, t) });
      await asShipped.close();
      classifier = await Classifier.load(parent.dir, {
        backend: o.backend,
        maxBatchSize: 64,
        frameInference: frameInference === 'tiles' ? 'tiles' : 'feature-map',
      });
    }
    try {
      scored = await scoreImages(classifier, images, { onProgress: (d, t) => progress('scoring images', d, t) });
      progress('embedding the simulator reference', 0, 1);
      reference = await embedSimulatorReference(classifier);
      progress('embedding the simulator reference', 1, 1);
    } finally {
      await classifier.close();
    }
  } finally {
    await asShipped.close();
  }
  scoredBefore ??= scored;
  const undecodable = scored.filter((s) => s.error).map((s) => ({ path: s.file.path, reason: s.error! }));
  if (undecodable.length > 0 && !o.skipUnreadable) throw unreadableError(undecodable);
  const inputsPerImage = checkTileCounts(scored, inputs.kind);
  const byPath = new Map(scored.map((s) => [s.file.path, s]));
  const scoredOf = (files: ImageFile[]) => files.map((f) => byPath.get(f.path)!);
  const beforeByPath = new Map(scoredBefore.map((s) => [s.file.path, s]));
  const scoredBeforeOf = (files: ImageFile[]) => files.map((f) => beforeByPath.get(f.path)!);
  const { fit, heldOut } = splitHeldOut(inputs.clean, share);
  const fitScored = scoredOf(fit).filter((s) => s.pPG !== undefined);
  checkFitSet(fitScored.length, scoredOf(fit), o, target, share);

  // Fit on the fitting images only.
  const parentOod = parent.card.ood ? readOodStats(parent.card.ood).stats : undefined;
  const oodFit = fitScored.every((s) => s.inputs)
    ? fitCameraOod(
        fitScored.map((s) => s.inputs!),
        parentOod,
        parent.card.classNames[0] ?? 'cex',
      )
    : undefined;
  const fitPPG = fitScored.map((s) => s.pPG!);
  const choice = chooseThreshold(fitPPG, target);
  const detector = fitDetector(fitPPG, { targetArlFrames });
  return {
    o,
    parent,
    outDir,
    inputs,
    scored,
    scoredOf,
    scoredBeforeOf,
    frameInference,
    fit,
    heldOut,
    fitImages: fitScored.length,
    undecodable,
    inputsPerImage,
    parentOod,
    oodFit,
    choice,
    detector,
    target,
    reference,
  };
}

/** Write the new folder, load it as production does, measure it on the held-out and PG images, and report. */
async function writeAndCheck(f: Fitted, progress: Progress): Promise<CalibrateResult> {
  const { o, parent, outDir, inputs, scored, scoredOf, fit, heldOut, undecodable, inputsPerImage, parentOod, oodFit, choice, detector, target } = f;
  const calibratedAt = new Date().toISOString();
  const section = {
    status: 'calibrated' as const,
    ...(inputs.camera ? { camera: inputs.camera } : {}),
    calibratedAt,
    note: `fitted by crystalwatch calibrate on ${f.fitImages} clean ${inputs.kind} of ${inputs.camera ? `camera ${inputs.camera}` : 'this camera'}: ${oodFit ? 'out-of-distribution statistics, ' : ''}operating threshold ${choice.threshold} (was ${parent.card.threshold}) and the onset detector's clean-score model (card field detector); figures on ${heldOut.length} held-out clean images in report.md`,
    provenance: {} as Record<string, unknown>,
  };
  await copyWeights(parent, outDir);
  const ood = oodFit && { ...oodFit.stats, frameInference: f.frameInference };
  const card = { parent, outDir, threshold: choice.threshold, ood, detector, calibration: section };
  const written = await writeCalibratedCard(card);

  // The new folder, loaded as production loads it, on images it was not fitted on.
  const fineTuneHeldOut = o.fineTune?.heldOut ?? [];
  const checked = [...heldOut, ...inputs.pg, ...fineTuneHeldOut];
  const checkedOutcomes = await classifyWith(outDir, checked, o.backend, (d, t) => progress('checking the new card', d, t));
  const afterOutcomes = checkedOutcomes.slice(0, heldOut.length + inputs.pg.length);
  const fineTune = o.fineTune && {
    ...o.fineTune.section,
    heldOut: {
      ...o.fineTune.section.heldOut,
      calibrated: labelledFigures(
        `${parent.card.name}@${written.version} (calibrated)`,
        choice.threshold,
        checkedOutcomes.slice(afterOutcomes.length),
        fineTuneHeldOut.map((f) => f.label),
      ),
    },
  };
  const embeddingMap = buildEmbeddingMap({
    reference: f.reference,
    plant: plantSets(scored),
    model: `${parent.card.name}@${written.version}`,
    before: parentOod,
    after: oodFit?.stats,
    baseline: o.fineTune?.baseline,
  });
  const before = (files: ImageFile[]): Outcome[] => f.scoredBeforeOf(files).map((s) => verdict(s, parent.card.threshold, parentOod));
  const hDefault = cusumThresholdForArl(DEFAULT_TARGET_ARL_FRAMES);
  const pg = inputs.pg.length > 0;
  const figuresBefore = cardFigures({
    threshold: parent.card.threshold,
    oodThreshold: parentOod?.threshold ?? null,
    heldOut: before(heldOut),
    fit: before(fit),
    pg: pg ? before(inputs.pg) : null,
    detector: {
      h: hDefault,
      llrOf: defaultLlr,
      modelArl0Frames: cusumAverageRunLength(hDefault, 'cex'),
      modelArl1Frames: cusumAverageRunLength(hDefault, 'pg'),
      fps: inputs.fps.value,
      seed: 0xca1b,
    },
  });
  const figuresAfter = cardFigures({
    threshold: choice.threshold,
    oodThreshold: oodFit?.stats.threshold ?? null,
    heldOut: afterOutcomes.slice(0, heldOut.length),
    fit: scoredOf(fit).map((s) => verdict(s, choice.threshold, oodFit?.stats)),
    pg: pg ? afterOutcomes.slice(heldOut.length) : null,
    detector: {
      h: detector.threshold,
      llrOf: (p) => llrAt(detector.llr, p),
      modelArl0Frames: detector.modelArl0Lower90Frames,
      modelArl1Frames: detector.modelArl1Frames,
      fps: inputs.fps.value,
      seed: 0xca1b,
    },
  });

  const report = buildReport({
    parent,
    outDir,
    version: written.version,
    inputs,
    inputsPerImage,
    scored,
    fit,
    heldOut,
    choice,
    target: { rate: target, source: o.maxFalsePositiveRate !== undefined ? 'stated' : 'default', confidence: THRESHOLD_CONFIDENCE },
    oodFit,
    detector,
    before: figuresBefore,
    after: figuresAfter,
    calibratedAt,
    command: o.command,
    skippedUnreadable: [...inputs.unreadable, ...undecodable],
    embeddingMap,
    fineTune,
  });
  progress('writing the report', 0, 1);
  const rows = (files: ImageFile[]) => imageRows(scoredOf(files), parentOod, oodFit?.stats);
  const reportFiles = await writeCalibrationReport(outDir, report, {
    sets: [
      { name: 'clean (fitting)', rows: rows(fit) },
      { name: 'clean (held out)', rows: rows(heldOut) },
      { name: 'PG', rows: rows(inputs.pg) },
    ],
    detector,
  });
  // The card's provenance carries the report's summary (the same numbers), written last.
  section.provenance = report.provenance;
  if (fineTune) Object.assign(section, { fineTune: cardFineTune(fineTune) });
  await writeCalibratedCard(card);
  progress('writing the report', 1, 1);
  return { outDir, cardPath: written.cardPath, version: written.version, report, reportFiles };
}

export async function calibrate(o: CalibrateOptions): Promise<CalibrateResult> {
  const progress = o.progress ?? (() => {});
  const fitted = await fitOnCamera(o, progress);
  try {
    return await writeAndCheck(fitted, progress);
  } catch (err) {
    // A folder that holds weights and a card but failed its own check must not be mistaken for a model.
    await rm(fitted.outDir, { recursive: true, force: true });
    throw err;
  }
}
