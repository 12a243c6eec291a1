/**
 * The preprocessing functions as they were before they were optimised (resample.ts, quality.ts,
 * probe-gate.ts at commit 9f753da), kept verbatim so test/classify-preprocess-exact.test.ts can
 * hold the fast versions to the same bytes and the same numbers. The model was trained on these
 * outputs: a change of one grey level is a change of model input.
 */
import type { DecodedImage } from '../../src/classify/preprocess.js';
import type { ProbeStats } from '../../src/classify/probe-gate.js';
import type { QualityStats } from '../../src/classify/quality.js';

/** GreyPlane as it was (the fast one may carry more). */
export interface GreyPlane {
  grey: Float32Array;
  width: number;
  height: number;
  chroma: number;
  colourfulFraction: number;
  mean: number;
  std: number;
  saturatedFraction: number;
}

interface Taps {
  /** First source index of each output pixel's window. */
  start: Int32Array;
  /** Window length per output pixel (all the same except at the borders). */
  count: Int32Array;
  /** `size` weights per output pixel, in 1/4096ths (libvips' fixed point for 8-bit images), summing to 4096. */
  weights: Int32Array;
  size: number;
}

const tapCache = new Map<string, Taps>();

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** Weights mapping `from` samples to `to` samples along one axis (cached: crops repeat sizes). */
function taps(from: number, to: number): Taps {
  const key = `${from}:${to}`;
  const cached = tapCache.get(key);
  if (cached) return cached;
  const scale = from / to;
  const support = 3 * Math.max(1, scale);
  const size = Math.ceil(2 * support) + 1;
  const start = new Int32Array(to);
  const count = new Int32Array(to);
  const weights = new Int32Array(to * size);
  const stretch = Math.max(1, scale);
  for (let i = 0; i < to; i++) {
    const centre = (i + 0.5) * scale - 0.5;
    const first = Math.max(0, Math.ceil(centre - support));
    const last = Math.min(from - 1, Math.floor(centre + support));
    let sum = 0;
    for (let s = first; s <= last; s++) sum += lanczos3((s - centre) / stretch);
    start[i] = first;
    count[i] = last - first + 1;
    // Rounded to fixed point; the rounding error goes to the centre tap so the weights sum to one.
    let total = 0;
    let centreTap = 0;
    for (let s = first; s <= last; s++) {
      const w = Math.round((ONE * lanczos3((s - centre) / stretch)) / sum);
      weights[i * size + (s - first)] = w;
      total += w;
      if (Math.abs(s - centre) < Math.abs(centreTap + first - centre)) centreTap = s - first;
    }
    weights[i * size + centreTap]! += ONE - total;
  }
  const t = { start, count, weights, size };
  if (tapCache.size > 256) tapCache.clear();
  tapCache.set(key, t);
  return t;
}

/** Fixed-point one: weights are in 1/4096ths, accumulated in 32-bit integers. */
const SHIFT = 12;
const ONE = 1 << SHIFT;
const HALF = ONE >> 1;

/** A fixed-point sum back to 8 bits, rounded and clamped. */
const to8 = (acc: number) => {
  const v = (acc + HALF) >> SHIFT;
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/**
 * Resize a `region` of one-channel 8-bit `pixels` (row length `width`) to `outWidth`×`outHeight`,
 * ignoring aspect (squash). Horizontal pass first, then vertical, as libvips does.
 */
export function referenceResizeGrey(
  pixels: Uint8Array,
  width: number,
  region: { x: number; y: number; width: number; height: number },
  outWidth: number,
  outHeight: number,
): Buffer {
  const h = taps(region.width, outWidth);
  const v = taps(region.height, outHeight);
  // Transposed intermediate (one column of the source per row), so the vertical pass reads
  // contiguous memory too; rounded to 8 bits as libvips' uchar passes are.
  const mid = new Uint8Array(outWidth * region.height);
  const rows = region.height;
  const { start: hStart, count: hCount, weights: hWeights, size: hSize } = h;
  for (let y = 0; y < rows; y++) {
    const row = (region.y + y) * width + region.x;
    for (let i = 0; i < outWidth; i++) {
      const base = i * hSize;
      const s0 = row + hStart[i]!;
      let acc = 0;
      for (let k = 0, n = hCount[i]!; k < n; k++) acc = (acc + pixels[s0 + k]! * hWeights[base + k]!) | 0;
      mid[i * rows + y] = to8(acc);
    }
  }
  const { start: vStart, count: vCount, weights: vWeights, size: vSize } = v;
  const out = Buffer.allocUnsafe(outWidth * outHeight);
  for (let i = 0; i < outWidth; i++) {
    const column = i * rows;
    for (let j = 0; j < outHeight; j++) {
      const base = j * vSize;
      const s0 = column + vStart[j]!;
      let acc = 0;
      for (let k = 0, n = vCount[j]!; k < n; k++) acc = (acc + mid[s0 + k]! * vWeights[base + k]!) | 0;
      out[j * outWidth + i] = to8(acc);
    }
  }
  return out;
}

/** Grey (BT.601 luma) samples of an image on at most `maxSide` pixels a side, and its colour. */
export function referenceGreyPlane(image: DecodedImage, maxSide = 320): GreyPlane {
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
export function referencePlaneQualityStats(p: GreyPlane): QualityStats {
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

/** Cells of about this many plane pixels a side (at least 4×4 cells; 13×10 on a 1280×960 frame). */
const CELL = 32;
/** A gradient (central differences, grey levels) this strong counts as an edge. */
const EDGE = 24;
/** tan(11.3°): |minor| < |major| / 5 counts as axis-aligned. */
const AXIS_RATIO = 5;

export function referenceProbeStats(p: GreyPlane, q: QualityStats): ProbeStats {
  const { grey, width: w, height: h } = p;
  const cols = Math.max(4, Math.round(w / CELL));
  const rows = Math.max(4, Math.round(h / CELL));
  const cellSum = new Float64Array(cols * rows);
  const cellSq = new Float64Array(cols * rows);
  const cellN = new Float64Array(cols * rows);
  // Column boundaries of the cells, so each row is summed cell span by cell span.
  const colStart = new Int32Array(cols + 1);
  for (let c = 0; c <= cols; c++) colStart[c] = Math.round((c * w) / cols);
  let edges = 0;
  let alongX = 0;
  let alongY = 0;
  // Every other row and column: cell statistics and edge directions need no more, and it halves
  // the cost twice over.
  for (let y = 1; y < h - 1; y += 2) {
    const rowCell = Math.min(rows - 1, Math.floor((y * rows) / h)) * cols;
    const base = y * w;
    for (let c = 0; c < cols; c++) {
      let sum = 0;
      let sq = 0;
      let n = 0;
      const x1 = Math.min(colStart[c + 1]!, w - 1);
      for (let x = Math.max(1, colStart[c]!) | 1, i = base + x; x < x1; x += 2, i += 2) {
        const v = grey[i]!;
        sum += v;
        sq += v * v;
        n++;
        const gx = grey[i + 1]! - grey[i - 1]!;
        const gy = grey[i + w]! - grey[i - w]!;
        const ax = gx < 0 ? -gx : gx;
        const ay = gy < 0 ? -gy : gy;
        if (ax + ay >= EDGE) {
          edges++;
          if (ax > AXIS_RATIO * ay) alongX++;
          else if (ay > AXIS_RATIO * ax) alongY++;
        }
      }
      cellSum[rowCell + c]! += sum;
      cellSq[rowCell + c]! += sq;
      cellN[rowCell + c]! += n;
    }
  }
  let brightFlat = 0;
  let brightFlatBorder = 0;
  let border = 0;
  let borderSum = 0;
  let deadFlat = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = r * cols + c;
      const n = cellN[k] || 1;
      const mean = cellSum[k]! / n;
      const sd = Math.sqrt(Math.max(0, cellSq[k]! / n - mean * mean));
      const isBorder = r === 0 || c === 0 || r === rows - 1 || c === cols - 1;
      const bright = mean >= 170 && sd < 10;
      if (bright) brightFlat++;
      if (isBorder) {
        border++;
        borderSum += mean;
        if (bright) brightFlatBorder++;
      }
      if (sd < 0.8 && mean >= 12 && mean < 250) deadFlat++;
    }
  }
  const cells = cols * rows;
  const variance = q.std * q.std;
  return {
    chroma: p.chroma,
    colourfulFraction: p.colourfulFraction,
    noiseRatio: variance > 0 ? q.laplacianVariance / variance : 0,
    brightFlatBorder: brightFlatBorder / border,
    brightFlat: brightFlat / cells,
    borderMean: borderSum / border,
    deadFlat: deadFlat / cells,
    midScaleStructure: variance > 0 ? midLaplacianVariance(p) / variance : 0,
    axisAligned: edges ? (2 * Math.min(alongX, alongY)) / edges : 0,
    edgeSamples: edges,
  };
}

/** Block side of the mid-scale image, in plane pixels. */
const BLOCK = 4;

/** Laplacian variance of the BLOCK×BLOCK-mean image (in grey levels). */
function midLaplacianVariance(p: GreyPlane): number {
  const bw = Math.floor(p.width / BLOCK);
  const bh = Math.floor(p.height / BLOCK);
  // Too small to say: an image a few blocks across is judged by the other statistics.
  if (bw < 3 || bh < 3) return Infinity;
  const { grey, width: w } = p;
  const blocks = new Float32Array(bw * bh);
  for (let y = 0; y < bh * BLOCK; y++) {
    const row = Math.floor(y / BLOCK) * bw;
    for (let bx = 0, i = y * w; bx < bw; bx++, i += BLOCK) blocks[row + bx]! += grey[i]! + grey[i + 1]! + grey[i + 2]! + grey[i + 3]!;
  }
  let sum = 0;
  let sq = 0;
  let n = 0;
  for (let y = 1; y < bh - 1; y++) {
    for (let x = 1, i = y * bw + 1; x < bw - 1; x++, i++) {
      const l = (blocks[i - 1]! + blocks[i + 1]! + blocks[i - bw]! + blocks[i + bw]! - 4 * blocks[i]!) / (BLOCK * BLOCK);
      sum += l;
      sq += l * l;
      n++;
    }
  }
  const mean = sum / n;
  return sq / n - mean * mean;
}
