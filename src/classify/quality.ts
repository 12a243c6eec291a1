/**
 * Image-quality gate before the model: a CNN gives a confident answer on a black, blown-out,
 * blank or blurred frame too, and such an answer must not reach the alarm. Each check is a
 * plain statistic on the grey image, so an operator can read why a frame was refused.
 *
 * The grey plane the statistics (here and in probe-gate.ts) are computed on is sampled once,
 * by striding, to at most MAX_SIDE pixels a side; colour is measured while sampling, before
 * anything is greyed.
 */
import type { DecodedImage } from './preprocess.js';
import type { UnusableReason } from './reasons.js';

export type QualityReason = Extract<UnusableReason, 'black' | 'saturated' | 'blank' | 'out-of-focus'>;

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

/** The sampled grey image and its colour, what every gate statistic is computed from. */
export interface GreyPlane {
  /** Always a Float32Array, so the statistics loops see one array type. */
  grey: Float32Array;
  width: number;
  height: number;
  /** Mean over samples of the largest difference between two colour channels (0 for grey files). */
  chroma: number;
  /** Fraction of samples whose channels differ by more than 24 levels. */
  colourfulFraction: number;
  /** Grey mean and standard deviation, and the fraction of samples at ≥ 250, of the samples. */
  mean: number;
  std: number;
  saturatedFraction: number;
}

/**
 * Longest side the statistics are computed on; larger frames are subsampled by striding
 * (a 1280×960 frame every 4th pixel: 320×240 samples, about 1 ms for every gate statistic).
 */
export const MAX_SIDE = 320;

/** Grey (BT.601 luma) samples of an image on at most `maxSide` pixels a side, and its colour. */
export function greyPlane(image: DecodedImage, maxSide = MAX_SIDE): GreyPlane {
  const step = Math.max(1, Math.ceil(Math.max(image.width, image.height) / maxSide));
  const w = Math.floor(image.width / step);
  const h = Math.floor(image.height / step);
  const { pixels, width, channels } = image;
  const plane = new Float32Array(w * h);
  let chroma = 0;
  let colourful = 0;
  let sum = 0;
  let sumSq = 0;
  let saturated = 0;
  const rowStep = step * channels;
  for (let y = 0; y < h; y++) {
    let i = y * step * width * channels;
    const o = y * w;
    if (channels === 1) {
      for (let x = 0; x < w; x++, i += rowStep) {
        const v = pixels[i]!;
        plane[o + x] = v;
        sum += v;
        sumSq += v * v;
        if (v >= 250) saturated++;
      }
      continue;
    }
    for (let x = 0; x < w; x++, i += rowStep) {
      const r = pixels[i]!;
      const g = pixels[i + 1]!;
      const b = pixels[i + 2]!;
      const v = 0.299 * r + 0.587 * g + 0.114 * b;
      plane[o + x] = v;
      sum += v;
      sumSq += v * v;
      if (v >= 250) saturated++;
      const spread = Math.max(r, g, b) - Math.min(r, g, b);
      chroma += spread;
      if (spread > 24) colourful++;
    }
  }
  const n = w * h;
  const mean = sum / n;
  const std = Math.sqrt(Math.max(0, sumSq / n - mean * mean));
  return { grey: plane, width: w, height: h, chroma: chroma / n, colourfulFraction: colourful / n, mean, std, saturatedFraction: saturated / n };
}

/** Mean, spread and saturation (from the sampling) and focus of the grey plane. */
export function planeQualityStats(p: GreyPlane): QualityStats {
  const { grey, width: w, height: h } = p;
  let lSum = 0;
  let lSumSq = 0;
  let ln = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1, i = y * w + 1; x < w - 1; x++, i++) {
      const l = grey[i - 1]! + grey[i + 1]! + grey[i - w]! + grey[i + w]! - 4 * grey[i]!;
      lSum += l;
      lSumSq += l * l;
      ln++;
    }
  }
  const lMean = ln ? lSum / ln : 0;
  const laplacianVariance = ln ? lSumSq / ln - lMean * lMean : 0;
  return { mean: p.mean, std: p.std, saturatedFraction: p.saturatedFraction, laplacianVariance };
}

/** Grey-level statistics of an image, on at most MAX_SIDE pixels a side. */
export function qualityStats(image: DecodedImage): QualityStats {
  return planeQualityStats(greyPlane(image));
}

/** The first reason the frame is unusable, or undefined when it may go to the model. */
export function judgeQuality(stats: QualityStats, t: QualityThresholds = DEFAULT_QUALITY): QualityReason | undefined {
  if (stats.mean < t.blackMean) return 'black';
  if (stats.saturatedFraction > t.saturatedFraction) return 'saturated';
  if (stats.std < t.blankStd) return 'blank';
  if (stats.laplacianVariance < t.minLaplacianVariance) return 'out-of-focus';
  return undefined;
}

const f1 = (v: number) => v.toFixed(1);

/** The statistic and bound behind a quality reason, for logs and `crystalwatch predict`. */
export function describeQuality(reason: QualityReason, s: QualityStats, t: QualityThresholds = DEFAULT_QUALITY): string {
  switch (reason) {
    case 'black':
      return `mean grey ${f1(s.mean)} < ${t.blackMean}`;
    case 'saturated':
      return `${f1(100 * s.saturatedFraction)} % of pixels ≥ 250 > ${100 * t.saturatedFraction} %`;
    case 'blank':
      return `grey standard deviation ${f1(s.std)} < ${t.blankStd}`;
    case 'out-of-focus':
      return `Laplacian variance ${f1(s.laplacianVariance)} < ${t.minLaplacianVariance}`;
  }
}
