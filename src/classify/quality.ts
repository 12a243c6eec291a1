/**
 * Image-quality gate before the model: a CNN gives a confident answer on a black, blown-out,
 * blank or blurred frame too, and such an answer must not reach the alarm. Each check is a
 * plain statistic on the grey image, so an operator can read why a frame was refused.
 */
import type { DecodedImage } from './preprocess.js';

export type UnusableReason = 'black' | 'saturated' | 'blank' | 'out-of-focus';

export interface QualityThresholds {
  /** Mean grey (0–255) below this: lamp off, lens covered. */
  blackMean: number;
  /** Fraction of pixels at ≥ 250 above this: over-exposed. */
  saturatedFraction: number;
  /** Grey standard deviation below this: nothing in view (uniform field). */
  blankStd: number;
  /** Variance of the 4-neighbour Laplacian below this: badly out of focus. */
  minLaplacianVariance: number;
}

export const DEFAULT_QUALITY: QualityThresholds = {
  blackMean: 8,
  saturatedFraction: 0.5,
  blankStd: 2,
  minLaplacianVariance: 5,
};

export interface QualityStats {
  mean: number;
  std: number;
  saturatedFraction: number;
  laplacianVariance: number;
}

/** Longest side the statistics are computed on; larger frames are subsampled by striding. */
const MAX_SIDE = 512;

/** Grey-level statistics of an image (BT.601 luma), on at most MAX_SIDE pixels a side. */
export function qualityStats(image: DecodedImage): QualityStats {
  const step = Math.max(1, Math.ceil(Math.max(image.width, image.height) / MAX_SIDE));
  const w = Math.floor(image.width / step);
  const h = Math.floor(image.height / step);
  const { pixels, width, channels } = image;
  // A grey crop at full size is its own grey plane: no copy (the common case, per frame).
  const direct = channels === 1 && step === 1;
  const grey: ArrayLike<number> = direct ? pixels : new Float32Array(w * h);
  let sum = 0;
  let sumSq = 0;
  let saturated = 0;
  if (direct) {
    for (let i = 0; i < pixels.length; i++) {
      const v = pixels[i];
      sum += v;
      sumSq += v * v;
      if (v >= 250) saturated++;
    }
  } else {
    const plane = grey as Float32Array;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = ((y * step) * width + x * step) * channels;
        const v = channels === 1 ? pixels[i] : 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
        plane[y * w + x] = v;
        sum += v;
        sumSq += v * v;
        if (v >= 250) saturated++;
      }
    }
  }
  const n = w * h;
  const mean = sum / n;
  const std = Math.sqrt(Math.max(0, sumSq / n - mean * mean));
  let lSum = 0;
  let lSumSq = 0;
  let ln = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const l = grey[i - 1] + grey[i + 1] + grey[i - w] + grey[i + w] - 4 * grey[i];
      lSum += l;
      lSumSq += l * l;
      ln++;
    }
  }
  const lMean = ln ? lSum / ln : 0;
  const laplacianVariance = ln ? lSumSq / ln - lMean * lMean : 0;
  return { mean, std, saturatedFraction: saturated / n, laplacianVariance };
}

/** The first reason the frame is unusable, or undefined when it may go to the model. */
export function judgeQuality(stats: QualityStats, t: QualityThresholds = DEFAULT_QUALITY): UnusableReason | undefined {
  if (stats.mean < t.blackMean) return 'black';
  if (stats.saturatedFraction > t.saturatedFraction) return 'saturated';
  if (stats.std < t.blankStd) return 'blank';
  if (stats.laplacianVariance < t.minLaplacianVariance) return 'out-of-focus';
  return undefined;
}
