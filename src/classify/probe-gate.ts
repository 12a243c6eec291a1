/**
 * The model-free half of "is this a probe image at all?". An in-situ probe image is grey, dark-
 * field or back-lit, textured across the whole field by crystals and sensor noise, with no large
 * flat bright background, no text or UI, no colour. What reaches a drop folder otherwise — a
 * phone photo of a crystal on a bench, a scanned page, a screenshot, an unplugged camera's
 * noise — is refused here as `not-probe`, with the statistic that gave it away.
 *
 * Every statistic comes from the same sampled grey plane as the quality gate (quality.ts), in
 * a few linear passes: well under a millisecond for a 1280×960 frame (bench/trust.ts).
 * The bounds were chosen on simulator crops and frames of many camera profiles (dark) and the
 * public set's crop brightness (mean grey ≈ 70–140), with margin on both sides.
 */
import type { GreyPlane, QualityStats } from './quality.js';
import { simdKernels } from './simd/index.js';

export interface ProbeStats {
  chroma: number;
  colourfulFraction: number;
  /** Laplacian variance ÷ grey variance: ≈ 20 for i.i.d. noise, far less for any optics. */
  noiseRatio: number;
  /** Border cells that are bright (mean ≥ 170) and flat (std < 10): a lit background around objects. */
  brightFlatBorder: number;
  /** All cells that are bright and flat. */
  brightFlat: number;
  /** Mean grey of the border cells: the background a probe image is dark or mid-grey at. */
  borderMean: number;
  /** Cells with no texture at all (std < 0.8, not black, not clipped): rendered UI, clean pages. */
  deadFlat: number;
  /**
   * Laplacian variance of the 4×4-block-mean image ÷ grey variance: how much of the image's
   * contrast is structure a few pixels across. ≈ 0.00–0.02 for a gradient or a smooth lit
   * surface (noise averages away, the ramp has no curvature); 0.035–5 for crystals (simulator profiles), whose blobs
   * and needles survive the averaging even far out of focus.
   */
  midScaleStructure: number;
  /**
   * Twice the smaller of the shares of strong gradients within ±11° of horizontal and of
   * vertical: text, tables and windows have both, ≈ 0.31 for edges in every direction. The
   * smaller of the two, so one needle lying along an axis does not look like a page.
   */
  axisAligned: number;
  /** Strong-gradient samples the share is computed on. */
  edgeSamples: number;
}

export interface ProbeThresholds {
  maxChroma: number;
  maxColourfulFraction: number;
  /** Mean grey above this is not a dark-field or back-lit probe image (bright PG crops reach ~195). */
  maxMean: number;
  /** Border cells brighter than this on average: a lit background (a bench, a page), not slurry. */
  maxBorderMean: number;
  maxNoiseRatio: number;
  /** Below this there is no fine texture at all for the contrast (a rendered gradient); probe images ≥ 0.03. */
  minNoiseRatio: number;
  maxBrightFlatBorder: number;
  maxBrightFlat: number;
  maxDeadFlat: number;
  maxAxisAligned: number;
  /** Below this there is nothing but a smooth surface (and noise). */
  minMidScaleStructure: number;
  /** The axis-aligned share is judged only with at least this many strong-gradient samples. */
  minEdgeSamples: number;
}

export const DEFAULT_PROBE: ProbeThresholds = {
  maxChroma: 4,
  maxColourfulFraction: 0.03,
  maxMean: 205,
  maxBorderMean: 185,
  maxNoiseRatio: 12,
  minNoiseRatio: 0.01,
  maxBrightFlatBorder: 0.3,
  maxBrightFlat: 0.45,
  maxDeadFlat: 0.2,
  maxAxisAligned: 0.42,
  minMidScaleStructure: 0.025,
  minEdgeSamples: 400,
};

/** Cells of about this many plane pixels a side (at least 4×4 cells; 13×10 on a 1280×960 frame). */
const CELL = 32;
/** A gradient (central differences, grey levels) this strong counts as an edge. */
const EDGE = 24;
/** tan(11.3°): |minor| < |major| / 5 counts as axis-aligned. */
const AXIS_RATIO = 5;

/** Strong-gradient samples, and those of them along each axis. */
export interface EdgeCounts {
  edges: number;
  alongX: number;
  alongY: number;
}

/** Per-cell sums and counts (three runs of `cells`) and block sums, grown on demand rather than allocated per image. */
let cellScratch = new Float64Array(0);
let blockScratch = new Float32Array(0);

export function probeStats(p: GreyPlane, q: QualityStats): ProbeStats {
  const { grey, width: w, height: h } = p;
  const cols = Math.max(4, Math.round(w / CELL));
  const rows = Math.max(4, Math.round(h / CELL));
  const cells = cols * rows;
  if (cellScratch.length < 3 * cells) cellScratch = new Float64Array(3 * cells);
  const cellSum = cellScratch.subarray(0, cells).fill(0);
  const cellSq = cellScratch.subarray(cells, 2 * cells).fill(0);
  const cellN = cellScratch.subarray(2 * cells, 3 * cells).fill(0);
  // Column boundaries of the cells, so each row is summed cell span by cell span.
  const colStart = new Int32Array(cols + 1);
  for (let c = 0; c <= cols; c++) colStart[c] = Math.round((c * w) / cols);
  const cellGrid = { cols, rows, colStart, cellSum, cellSq, cellN };
  const { edges, alongX, alongY } =
    grey instanceof Float32Array
      ? lumaCellsAndEdges(grey, w, h, cellGrid)
      : (simdKernels()?.cellsAndEdges(grey, w, h, cellGrid) ?? levelCellsAndEdges(grey, w, h, cellGrid));
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

/** The cells a plane is cut into, and their running sums (filled by the cell loops). */
export interface CellGrid {
  cols: number;
  rows: number;
  colStart: Int32Array;
  cellSum: Float64Array;
  cellSq: Float64Array;
  cellN: Float64Array;
}

/**
 * Cell sums and edge counts of whole levels, every other row and column: cell statistics and
 * edge directions need no more, and it halves the cost twice over. Integer sums, and the edge
 * tests without branches (on a noisy crop a branch per sample is a coin toss for the CPU): |g|
 * by the sign mask, `a ≥ b` as the sign bit of `b - 1 - a`. "Along x" and "along y" exclude
 * each other (ax > 5·ay and ay > 5·ax cannot both hold), as the else-if of the luma loop says.
 */
function levelCellsAndEdges(grey: Uint8Array, w: number, h: number, grid: CellGrid): EdgeCounts {
  const { cols, rows, colStart, cellSum, cellSq, cellN } = grid;
  let edges = 0;
  let alongX = 0;
  let alongY = 0;
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
        const sx = gx >> 31;
        const sy = gy >> 31;
        const ax = (gx ^ sx) - sx;
        const ay = (gy ^ sy) - sy;
        const strong = (EDGE - 1 - ax - ay) >>> 31;
        edges += strong;
        alongX += strong & ((AXIS_RATIO * ay - ax) >>> 31);
        alongY += strong & ((AXIS_RATIO * ax - ay) >>> 31);
      }
      cellSum[rowCell + c]! += sum;
      cellSq[rowCell + c]! += sq;
      cellN[rowCell + c]! += n;
    }
  }
  return { edges, alongX, alongY };
}

/** The same for luma, whose sums are not whole numbers: one sample at a time, in this order. */
function lumaCellsAndEdges(grey: Float32Array, w: number, h: number, grid: CellGrid): EdgeCounts {
  const { cols, rows, colStart, cellSum, cellSq, cellN } = grid;
  let edges = 0;
  let alongX = 0;
  let alongY = 0;
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
  return { edges, alongX, alongY };
}

/** Block side of the mid-scale image, in plane pixels. */
const BLOCK = 4;

/** Laplacian variance of the BLOCK×BLOCK-mean image (in grey levels). */
function midLaplacianVariance(p: GreyPlane): number {
  const bw = Math.floor(p.width / BLOCK);
  const bh = Math.floor(p.height / BLOCK);
  // Too small to say: an image a few blocks across is judged by the other statistics.
  if (bw < 3 || bh < 3) return Infinity;
  if (blockScratch.length < bw * bh) blockScratch = new Float32Array(bw * bh);
  const blocks = blockScratch.subarray(0, bw * bh);
  if (p.grey instanceof Float32Array) lumaBlockSums(p.grey, p.width, bw, bh, blocks);
  else {
    const kernels = simdKernels();
    if (kernels) kernels.blockSums(p.grey, p.width, p.height, bw, bh, blocks);
    else levelBlockSums(p.grey, p.width, bw, bh, blocks);
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

/** Sums of whole levels over each block, in integers (at most 16 × 255: exact in a float). */
function levelBlockSums(grey: Uint8Array, w: number, bw: number, bh: number, blocks: Float32Array): void {
  for (let by = 0; by < bh; by++) {
    for (let bx = 0; bx < bw; bx++) {
      let s = 0;
      for (let r = 0, i = by * BLOCK * w + bx * BLOCK; r < BLOCK; r++, i += w) s += grey[i]! + grey[i + 1]! + grey[i + 2]! + grey[i + 3]!;
      blocks[by * bw + bx] = s;
    }
  }
}

/** Sums of luma over each block, a row of four at a time, rounded to a float after each as it always was. */
function lumaBlockSums(grey: Float32Array, w: number, bw: number, bh: number, blocks: Float32Array): void {
  blocks.fill(0);
  for (let y = 0; y < bh * BLOCK; y++) {
    const row = Math.floor(y / BLOCK) * bw;
    for (let bx = 0, i = y * w; bx < bw; bx++, i += BLOCK) blocks[row + bx]! += grey[i]! + grey[i + 1]! + grey[i + 2]! + grey[i + 3]!;
  }
}

const f = (v: number, digits = 2) => v.toFixed(digits);

/** Why the image is not a probe image (a short, readable detail), or undefined when it may be one. */
export function judgeProbe(s: ProbeStats, q: QualityStats, t: ProbeThresholds = DEFAULT_PROBE): string | undefined {
  if (s.chroma > t.maxChroma) return `colour: mean channel spread ${f(s.chroma, 1)} > ${t.maxChroma}`;
  if (s.colourfulFraction > t.maxColourfulFraction)
    return `colour: ${f(100 * s.colourfulFraction, 1)} % of pixels coloured > ${f(100 * t.maxColourfulFraction, 1)} %`;
  if (s.noiseRatio > t.maxNoiseRatio) return `noise: Laplacian/grey variance ${f(s.noiseRatio, 1)} > ${t.maxNoiseRatio} (i.i.d. noise ≈ 20)`;
  if (s.noiseRatio < t.minNoiseRatio) return `no fine texture: Laplacian/grey variance ${f(s.noiseRatio, 3)} < ${t.minNoiseRatio} (rendered, not photographed)`;
  if (s.brightFlatBorder > t.maxBrightFlatBorder)
    return `bright flat background on ${f(100 * s.brightFlatBorder, 0)} % of the border > ${f(100 * t.maxBrightFlatBorder, 0)} %`;
  if (s.brightFlat > t.maxBrightFlat) return `bright flat area ${f(100 * s.brightFlat, 0)} % > ${f(100 * t.maxBrightFlat, 0)} %`;
  if (s.borderMean > t.maxBorderMean) return `bright background: border mean grey ${f(s.borderMean, 0)} > ${t.maxBorderMean}`;
  if (q.mean > t.maxMean) return `mean grey ${f(q.mean, 0)} > ${t.maxMean}: not dark-field or back-lit`;
  if (s.midScaleStructure < t.minMidScaleStructure)
    return `no structure: mid-scale Laplacian ${f(100 * s.midScaleStructure, 1)} % of the grey variance < ${f(100 * t.minMidScaleStructure, 1)} % (a gradient or a smooth surface)`;
  if (s.deadFlat > t.maxDeadFlat) return `untextured area ${f(100 * s.deadFlat, 0)} % > ${f(100 * t.maxDeadFlat, 0)} % (rendered, not photographed)`;
  if (s.edgeSamples >= t.minEdgeSamples && s.axisAligned > t.maxAxisAligned)
    return `edges along both axes: ${f(s.axisAligned, 2)} > ${t.maxAxisAligned} (text, tables, windows; ≈ 0.31 for edges in every direction)`;
  return undefined;
}
