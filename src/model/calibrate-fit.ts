/**
 * The two fits on the camera's clean fitting images that are not the detector's
 * (calibrate-detector.ts): the out-of-distribution statistics and the operating threshold.
 *
 * OOD: the card's statistics describe "what the model was fitted on"; this camera's gate should
 * describe what this camera shows. The CEX class becomes this camera's clean inputs (every
 * tile of every fitting frame, or every crop), its covariance shrunk towards its mean variance
 * by d/(d + n) (at least 1 %) so 40 crops in 64 dimensions still give a usable distance; the
 * card's other classes (PG) stay, so PG is not refused as unlike this camera's clean frames.
 * The camera's own bound is the `percentile` of out-of-fold image scores (5 folds in time
 * order: each image scored by statistics fitted without it) × 1.1 — in-sample scores would be
 * optimistic, most of all with few images; below 1000 images the percentile is the largest
 * score. The threshold is that bound or the parent card's, whichever is larger: a PG-bearing
 * frame of this camera scores well above its clean frames (on plant B, median 1.07 against
 * 0.65 for clean, the largest 1.36), and no clean image says how far, so the gate never becomes
 * stricter than the card it came from — a camera the parent card refused is let in, nothing
 * the parent let in is refused.
 *
 * Threshold: the lowest threshold at which the fitting frames' false-positive count k keeps the
 * one-sided Clopper–Pearson upper bound (confidence 0.9) on the rate within the target — so
 * the rate on new frames is within the target with that confidence, not just on average. When
 * even k = 0 does not (fewer than ln(0.1)/ln(1 − target) fitting frames), the threshold goes
 * just above the highest clean score and the target is reported as not established.
 */
import { fitOodStats, type OodClassStats, type OodStats } from './ood.js';
import type { InputScore } from './calibrate-score.js';
import { imageOodScore } from './calibrate-score.js';
import { logit } from './calibrate-detector.js';

export class CalibrationFitError extends Error {
  override name = 'CalibrationFitError';
}

export const THRESHOLD_CONFIDENCE = 0.9;
export const OOD_FOLDS = 5;
export const OOD_MARGIN = 1.1;
export const CAMERA_CLASS = 'camera-clean';

function shrinkageFor(d: number, n: number): number {
  return Math.min(0.9, Math.max(0.01, d / (d + n)));
}

function fitCameraClass(images: readonly (readonly InputScore[])[], d: number): { cls: OodClassStats; shrinkage: number; inputs: number } {
  const rows = images.reduce((n, i) => n + i.length, 0);
  const flat = new Float32Array(rows * d);
  let r = 0;
  for (const inputs of images) for (const i of inputs) flat.set(i.embedding, d * r++);
  const shrinkage = shrinkageFor(d, rows);
  const stats = fitOodStats(flat, new Uint8Array(rows), d, [CAMERA_CLASS], 99.9, shrinkage);
  return { cls: stats.classes[0]!, shrinkage, inputs: rows };
}

export interface CameraOodFit {
  stats: OodStats;
  /** The camera's own bound (out-of-fold percentile × OOD_MARGIN), before the parent's threshold is taken into account. */
  cameraBound: number;
  thresholdFrom: 'camera' | 'parent';
  outOfFoldScores: number[];
  shrinkage: number;
  inputs: number;
  kept: string[];
}

/** Replace the card's CEX class by this camera's clean inputs; keep its other classes; set the threshold out of fold. */
export function fitCameraOod(fitImages: readonly (readonly InputScore[])[], parent: OodStats | undefined, cexClass: string, percentile = 99.9): CameraOodFit {
  const d = fitImages[0]?.[0]?.embedding.length;
  if (d === undefined) throw new CalibrationFitError('no fitting images with an embedding to fit out-of-distribution statistics on');
  if (parent && parent.dimensions !== d)
    throw new CalibrationFitError(
      `the card's ood.dimensions is ${parent.dimensions} but the model's embedding has ${d} values; use the card that came with this model`,
    );
  const kept = (parent?.classes ?? []).filter((c) => c.name !== cexClass);
  const folds = Math.min(OOD_FOLDS, fitImages.length);
  const outOfFoldScores: number[] = [];
  for (let f = 0; f < folds; f++) {
    const lo = Math.floor((f * fitImages.length) / folds);
    const hi = Math.floor(((f + 1) * fitImages.length) / folds);
    const { cls } = fitCameraClass([...fitImages.slice(0, lo), ...fitImages.slice(hi)], d);
    const stats = { classes: [cls, ...kept], dimensions: d };
    for (const image of fitImages.slice(lo, hi)) outOfFoldScores.push(imageOodScore(image, stats));
  }
  const sorted = [...outOfFoldScores].sort((a, b) => a - b);
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((percentile / 100) * sorted.length) - 1));
  const { cls, shrinkage, inputs } = fitCameraClass(fitImages, d);
  const cameraBound = sorted[at]! * OOD_MARGIN;
  const fromParent = parent !== undefined && parent.threshold > cameraBound;
  const threshold = fromParent ? parent.threshold : cameraBound;
  return {
    stats: { method: 'mahalanobis-full-nearest-class', threshold, ...(fromParent ? {} : { percentile }), dimensions: d, classes: [cls, ...kept] },
    cameraBound,
    thresholdFrom: fromParent ? 'parent' : 'camera',
    outOfFoldScores,
    shrinkage,
    inputs,
    kept: kept.map((c) => c.name),
  };
}

function logBinomialPmf(k: number, n: number, p: number): number {
  let lc = 0;
  for (let i = 1; i <= k; i++) lc += Math.log((n - k + i) / i);
  return lc + k * Math.log(p) + (n - k) * Math.log1p(-p);
}

/** One-sided Clopper–Pearson upper bound on a rate from k events in n trials. */
export function upperBound(k: number, n: number, confidence = THRESHOLD_CONFIDENCE): number {
  if (n <= 0) return 1;
  if (k >= n) return 1;
  const cdf = (p: number) => {
    let s = 0;
    for (let i = 0; i <= k; i++) s += Math.exp(logBinomialPmf(i, n, p));
    return s;
  };
  let lo = k / n;
  let hi = 1;
  for (let it = 0; it < 60; it++) {
    const mid = (lo + hi) / 2;
    if (cdf(mid) > 1 - confidence) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Fitting frames needed before a target rate can be established with zero false positives. */
export const framesForTarget = (target: number, confidence = THRESHOLD_CONFIDENCE): number => Math.ceil(Math.log(1 - confidence) / Math.log(1 - target));

export interface ThresholdChoice {
  threshold: number;
  /** Fitting frames at or above it. */
  fitFalsePositives: number;
  fitFrames: number;
  /** Upper confidence bound on the rate from the fitting frames. */
  upperBound: number;
  /** Whether the fitting frames show the target at the stated confidence. */
  established: boolean;
  framesForTarget: number;
}

/** Highest P(PG) a card threshold can take: the classifier rounds to 6 decimals. */
const MAX_THRESHOLD = 0.999999;

export function chooseThreshold(cleanPPG: readonly number[], target: number, confidence = THRESHOLD_CONFIDENCE): ThresholdChoice {
  const sorted = [...cleanPPG].sort((a, b) => b - a);
  const n = sorted.length;
  if (n === 0) throw new CalibrationFitError('no clean fitting images to choose a threshold on');
  const desc = (i: number): number => sorted[i]!;
  let k = 0;
  while (k + 1 < n && upperBound(k + 1, n, confidence) <= target) k++;
  const established = upperBound(k, n, confidence) <= target;
  // Ties cannot be split: step down to a k where the k-th and (k+1)-th highest scores differ.
  while (k > 0 && desc(k) >= desc(k - 1)) k--;
  let threshold: number;
  if (k > 0) {
    threshold = 1 / (1 + Math.exp(-(logit(desc(k)) + logit(desc(k - 1))) / 2));
  } else {
    // Above the highest clean score by half the typical spacing of the top scores (in logit), at most 0.5.
    const top = sorted.slice(0, Math.min(10, n)).map(logit);
    const gaps = top
      .slice(1)
      .map((u, i) => top[i]! - u)
      .sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)];
    const gap = median !== undefined ? Math.min(0.5, Math.max(1e-3, median / 2)) : 0.5;
    threshold = 1 / (1 + Math.exp(-(logit(desc(0)) + gap)));
  }
  threshold = Math.round(threshold * 1e6) / 1e6;
  if (threshold <= desc(k)) threshold = Math.round(desc(k) * 1e6 + 1) / 1e6;
  if (threshold > MAX_THRESHOLD) {
    const saturated = sorted.filter((p) => p >= MAX_THRESHOLD).length;
    throw new CalibrationFitError(
      `${saturated} of ${n} clean fitting images score P(PG) ≥ ${MAX_THRESHOLD}: no threshold keeps them below it, so this model cannot tell this camera's clean frames from PG by a threshold; check that the clean folders hold no PG, or train a model on labelled images from this camera`,
    );
  }
  const fitFalsePositives = sorted.filter((p) => p >= threshold).length;
  return {
    threshold,
    fitFalsePositives,
    fitFrames: n,
    upperBound: upperBound(fitFalsePositives, n, confidence),
    established,
    framesForTarget: framesForTarget(target, confidence),
  };
}

export interface CurvePoint {
  threshold: number;
  fitFalsePositiveRate: number;
  heldOutFalsePositiveRate: number;
  pgRecall: number | null;
}

const rateAtOrAbove = (scores: readonly number[], t: number): number => (scores.length ? scores.filter((s) => s >= t).length / scores.length : 0);

/** False-positive rates and PG recall over thresholds from 0.5 to just below 1 (dense where the scores are). */
export function thresholdCurve(fit: readonly number[], heldOut: readonly number[], pg: readonly number[]): CurvePoint[] {
  const candidates = new Set<number>();
  for (let u = 0; u <= 10; u += 0.25) candidates.add(Math.round((1 / (1 + Math.exp(-u))) * 1e6) / 1e6);
  for (const s of [...fit, ...heldOut, ...pg]) if (s >= 0.5) candidates.add(Math.round(s * 1e6) / 1e6);
  const sorted = [...candidates].sort((a, b) => a - b);
  const step = Math.max(1, Math.floor(sorted.length / 150));
  return sorted
    .filter((_, i) => i % step === 0)
    .map((t) => ({
      threshold: t,
      fitFalsePositiveRate: rateAtOrAbove(fit, t),
      heldOutFalsePositiveRate: rateAtOrAbove(heldOut, t),
      pgRecall: pg.length ? rateAtOrAbove(pg, t) : null,
    }));
}
