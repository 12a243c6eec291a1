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
import { simdKernels } from './simd/index.js';

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
  /**
   * The samples, row-major: a grey file's own levels (a view of its pixels when it is not
   * strided), or the BT.601 luma of a colour file. Each statistic has a loop for each type, so
   * a loop sees one array type, and whole levels are summed as integers (exact in any order,
   * hence the same numbers as summing the luma's way).
   */
  grey: Uint8Array | Float32Array;
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
 * (a 1280×960 frame every 4th pixel: 320×240 samples, about 0.55 ms for every gate statistic
 * before the SIMD kernels; a 200-px crop 0.09–0.11 ms in WebAssembly SIMD, 0.22–0.30 in
 * JavaScript).
 */
export const MAX_SIDE = 320;

/** Grey (BT.601 luma) samples of an image on at most `maxSide` pixels a side, and its colour. */
export function greyPlane(image: DecodedImage, maxSide = MAX_SIDE): GreyPlane {
  const step = Math.max(1, Math.ceil(Math.max(image.width, image.height) / maxSide));
  const w = Math.floor(image.width / step);
  const h = Math.floor(image.height / step);
  // A plain Uint8Array view, so the loops see one array type whether a Buffer or not came in.
  const pixels = new Uint8Array(image.pixels.buffer, image.pixels.byteOffset, image.pixels.length);
  return image.channels === 1 ? levelPlane(pixels, image.width, step, w, h) : lumaPlane(pixels, image.width, step, w, h);
}

/**
 * A grey file's levels every `step` pixels (its pixels themselves when `step` is 1). Sums per
 * row in integers, then across rows: whole numbers, so the totals are exact in any order.
 */
function levelPlane(pixels: Uint8Array, width: number, step: number, w: number, h: number): GreyPlane {
  const plane = step === 1 ? pixels.subarray(0, w * h) : new Uint8Array(w * h);
  const kernels = step === 1 ? simdKernels() : undefined;
  if (kernels) {
    const { sum, sumSq, saturated } = kernels.levelSums(plane, w * h);
    return planeOf(plane, w, h, 0, 0, sum, sumSq, saturated);
  }
  let sum = 0;
  let sumSq = 0;
  let saturated = 0;
  for (let y = 0; y < h; y++) {
    let rowSum = 0;
    let rowSq = 0;
    const o = y * w;
    if (step === 1) {
      for (let i = o, end = o + w; i < end; i++) {
        const v = plane[i]!;
        rowSum += v;
        rowSq += v * v;
        // v ≥ 250 ⇔ v + 6 ≥ 256, for v ≤ 255: a count without a branch.
        saturated += (v + 6) >> 8;
      }
    } else {
      for (let x = 0, i = y * step * width; x < w; x++, i += step) {
        const v = pixels[i]!;
        plane[o + x] = v;
        rowSum += v;
        rowSq += v * v;
        saturated += (v + 6) >> 8;
      }
    }
    sum += rowSum;
    sumSq += rowSq;
  }
  return planeOf(plane, w, h, 0, 0, sum, sumSq, saturated);
}

/** A colour file's BT.601 luma every `step` pixels, and how colourful it is. */
function lumaPlane(pixels: Uint8Array, width: number, step: number, w: number, h: number): GreyPlane {
  const plane = new Float32Array(w * h);
  let chroma = 0;
  let colourful = 0;
  let sum = 0;
  let sumSq = 0;
  let saturated = 0;
  const pixelStep = step * 3;
  for (let y = 0; y < h; y++) {
    let i = y * step * width * 3;
    const o = y * w;
    for (let x = 0; x < w; x++, i += pixelStep) {
      const r = pixels[i]!;
      const g = pixels[i + 1]!;
      const b = pixels[i + 2]!;
      // Luma sums are not whole numbers: summed one sample at a time, in this order.
      const v = 0.299 * r + 0.587 * g + 0.114 * b;
      plane[o + x] = v;
      sum += v;
      sumSq += v * v;
      if (v >= 250) saturated++;
      const max = r > g ? (r > b ? r : b) : g > b ? g : b;
      const min = r < g ? (r < b ? r : b) : g < b ? g : b;
      const spread = max - min;
      chroma += spread;
      if (spread > 24) colourful++;
    }
  }
  return planeOf(plane, w, h, chroma, colourful, sum, sumSq, saturated);
}

/** The plane and its sample statistics, from the sampling loop's totals. */
function planeOf(
  grey: Uint8Array | Float32Array,
  w: number,
  h: number,
  chroma: number,
  colourful: number,
  sum: number,
  sumSq: number,
  saturated: number,
): GreyPlane {
  const n = w * h;
  const mean = sum / n;
  const std = Math.sqrt(Math.max(0, sumSq / n - mean * mean));
  return { grey, width: w, height: h, chroma: chroma / n, colourfulFraction: colourful / n, mean, std, saturatedFraction: saturated / n };
}

/** Mean, spread and saturation (from the sampling) and focus of the grey plane. */
export function planeQualityStats(p: GreyPlane): QualityStats {
  const laplacianVariance =
    p.grey instanceof Float32Array ? lumaLaplacianVariance(p.grey, p.width, p.height) : levelLaplacianVariance(p.grey, p.width, p.height);
  return { mean: p.mean, std: p.std, saturatedFraction: p.saturatedFraction, laplacianVariance };
}

/** Variance of a sum and a sum of squares over `n` values (0 for none). */
function variance(sum: number, sumSq: number, n: number): number {
  const mean = n ? sum / n : 0;
  return n ? sumSq / n - mean * mean : 0;
}

/**
 * Variance of the 4-neighbour Laplacian of whole levels, summed in integers. Two rows at a
 * time, each row's left and centre samples rolling along: each row is the other's upper or lower
 * neighbour, so a pair of pixels costs four loads, not ten.
 */
function levelLaplacianVariance(grey: Uint8Array, w: number, h: number): number {
  if (w < 3 || h < 3) return 0;
  const sums = simdKernels()?.laplacianSums(grey, w, h);
  if (sums) return variance(sums.sum, sums.sumSq, (w - 2) * (h - 2));
  let sum = 0;
  let sumSq = 0;
  let y = 1;
  for (; y + 1 < h - 1; y += 2) {
    const upper = y * w;
    const lower = upper + w;
    let upperLeft = grey[upper]!;
    let upperCentre = grey[upper + 1]!;
    let lowerLeft = grey[lower]!;
    let lowerCentre = grey[lower + 1]!;
    let pairSum = 0;
    let pairSq = 0;
    for (let x = 1; x < w - 1; x++) {
      const upperRight = grey[upper + x + 1]!;
      const lowerRight = grey[lower + x + 1]!;
      const lu = upperLeft + upperRight + grey[upper - w + x]! + lowerCentre - 4 * upperCentre;
      const ll = lowerLeft + lowerRight + upperCentre + grey[lower + w + x]! - 4 * lowerCentre;
      pairSum += lu + ll;
      pairSq += lu * lu + ll * ll;
      upperLeft = upperCentre;
      upperCentre = upperRight;
      lowerLeft = lowerCentre;
      lowerCentre = lowerRight;
    }
    sum += pairSum;
    sumSq += pairSq;
  }
  // The last row alone, when there is an odd number of them.
  if (y < h - 1) {
    const row = y * w;
    let left = grey[row]!;
    let centre = grey[row + 1]!;
    for (let i = row + 1, end = row + w - 1; i < end; i++) {
      const right = grey[i + 1]!;
      const l = left + right + grey[i - w]! + grey[i + w]! - 4 * centre;
      sum += l;
      sumSq += l * l;
      left = centre;
      centre = right;
    }
  }
  return variance(sum, sumSq, (w - 2) * (h - 2));
}

/** Variance of the 4-neighbour Laplacian of luma, summed one sample at a time, in this order. */
function lumaLaplacianVariance(grey: Float32Array, w: number, h: number): number {
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1, i = y * w + 1; x < w - 1; x++, i++) {
      const l = grey[i - 1]! + grey[i + 1]! + grey[i - w]! + grey[i + w]! - 4 * grey[i]!;
      sum += l;
      sumSq += l * l;
      n++;
    }
  }
  return variance(sum, sumSq, n);
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
