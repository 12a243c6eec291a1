/**
 * Lanczos-3 resampling of small 8-bit grey images, for crops, with libvips' `reduce` arithmetic:
 * the kernel stretched by the shrink factor, pixel centres aligned, weights normalised per output
 * pixel in 12-bit fixed point, rounded to 8 bits after each pass. Its bytes are within 2 grey
 * levels of sharp's (mean 0.23, test/classify-png.test.ts), without a sharp pipeline, whose set-up
 * and thread-pool hop cost more than the ~0.3 M multiply-adds a 200-px crop needs. Large frames
 * stay with sharp (they are not cheaper here).
 *
 * The multiply-adds are exact integers, so they may be done in any grouping, and the two ways
 * here give the same bytes (test/classify-preprocess-exact.test.ts holds both to the first code):
 * - WebAssembly SIMD (simd/kernels.wat `filterPass`, eight taps of four rows a step, exact i32
 *   sums): 0.05–0.06 ms of CPU for a 130–230 px crop to 64×64 on this project's 2-core machine.
 * - JavaScript, where the runtime has no WebAssembly SIMD or `CRYSTALWATCH_SIMD=0`: two
 *   neighbouring outputs share one float64 weight, `w₀ + w₁·2²⁴`, so one multiply-add of a pixel
 *   by it is a multiply-add for each output, each in its own 24 bits of the 53-bit mantissa, and
 *   four rows (or columns) share each weight load: 0.26–0.28 ms for the same crop in the same
 *   measurements (0.17 ms on a faster day of the VM; a weight per output and a transposed
 *   intermediate took 0.5 ms).
 */
import type { Region } from './preprocess.js';
import { simdKernels, type FilterTaps } from './simd/index.js';

/** Above this many source pixels, leave resizing to sharp. */
export const RESAMPLE_MAX_PIXELS = 512 * 512;

/** Fixed-point one: weights are in 1/4096ths. */
const SHIFT = 12;
const ONE = 1 << SHIFT;
const HALF = ONE >> 1;

/** One output's window, as libvips computes it. */
interface OutputTaps {
  /** First source index of each output pixel's window. */
  start: Int32Array;
  /** Window length per output pixel (all the same except at the borders). */
  count: Int32Array;
  /** `size` weights per output pixel, in 1/4096ths (libvips' fixed point for 8-bit images), summing to 4096. */
  weights: Int32Array;
  size: number;
}

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** Weights mapping `from` samples to `to` samples along one axis, per output. */
function outputTaps(from: number, to: number): OutputTaps {
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
  return { start, count, weights, size };
}

/** `build(from, to)` from `cache` when it is there (crops repeat sizes; the cache is emptied past 256 sizes). */
function cachedTaps<T>(cache: Map<string, T>, from: number, to: number, build: (from: number, to: number) => T): T {
  const key = `${from}:${to}`;
  let taps = cache.get(key);
  if (taps === undefined) {
    taps = build(from, to);
    if (cache.size > 256) cache.clear();
    cache.set(key, taps);
  }
  return taps;
}

const filterTapCache = new Map<string, FilterTaps>();

/** Weights mapping `from` samples to `to` samples along one axis, as `filterPass` reads them. */
function filterTaps(from: number, to: number): FilterTaps {
  const one = outputTaps(from, to);
  let longest = 0;
  for (let i = 0; i < to; i++) longest = Math.max(longest, one.count[i]!);
  const size = (longest + 7) & ~7;
  const weights = new Int16Array(to * size);
  for (let i = 0; i < to; i++) {
    for (let k = 0; k < one.count[i]!; k++) {
      const w = one.weights[i * one.size + k]!;
      // Lanczos-3 weights stay within ±1.1 × ONE: far inside an i16.
      if (w < -32_768 || w > 32_767) throw new Error(`resizeGrey: Lanczos-3 weight ${w} for ${from} → ${to} px does not fit 16 bits`);
      weights[i * size + k] = w;
    }
  }
  return { start: one.start, weights, taps: size };
}

/**
 * Resize a `region` of one-channel 8-bit `pixels` (row length `width`) to `outWidth`×`outHeight`,
 * ignoring aspect (squash): in WebAssembly SIMD where the runtime has it, else in JavaScript.
 */
export function resizeGrey(pixels: Uint8Array, width: number, region: Region, outWidth: number, outHeight: number): Buffer {
  const kernels = simdKernels();
  if (!kernels) return resizeGreyJs(pixels, width, region, outWidth, outHeight);
  const h = cachedTaps(filterTapCache, region.width, outWidth, filterTaps);
  const v = cachedTaps(filterTapCache, region.height, outHeight, filterTaps);
  return kernels.resizeGrey(pixels, width, region, h, v);
}

// The JavaScript way, where there is no WebAssembly SIMD.

/** The weights of pairs of neighbouring outputs (2q, 2q + 1), over the union of their windows. */
interface PairTaps {
  pairs: number;
  /** First source index of each pair's window. */
  start: Int32Array;
  /** Window length per pair. */
  count: Int32Array;
  /**
   * `size` packed weights per pair: the even output's weight + LANE × the odd one's (0 outside
   * an output's own window, and for the odd output past the last).
   */
  weights: Float64Array;
  size: number;
}

/**
 * The even output's sum lives in the low lane, the odd one's in the high one. A lane holds at
 * most 255 × Σ|w| + HALF in magnitude (≈ 1.6 M: Σ|w| ≤ 1.6 × ONE for Lanczos-3, where the
 * window always holds at least half the main lobe); it must stay below LANE / 2 for the split
 * to be exact (pairTaps() checks), and then the packed sum stays below 2⁴⁷, exact in a float64.
 */
const LANE = 2 ** 24;

const pairTapCache = new Map<string, PairTaps>();

/** Weights mapping `from` samples to `to` samples along one axis, packed by pairs. */
function pairTaps(from: number, to: number): PairTaps {
  const one = outputTaps(from, to);
  const pairs = (to + 1) >> 1;
  const start = new Int32Array(pairs);
  const count = new Int32Array(pairs);
  let size = 0;
  for (let q = 0; q < pairs; q++) {
    const a = 2 * q;
    const b = Math.min(a + 1, to - 1);
    start[q] = Math.min(one.start[a]!, one.start[b]!);
    count[q] = Math.max(one.start[a]! + one.count[a]!, one.start[b]! + one.count[b]!) - start[q]!;
    size = Math.max(size, count[q]!);
  }
  const weights = new Float64Array(pairs * size);
  for (let q = 0; q < pairs; q++) {
    for (let lane = 0; lane < 2 && 2 * q + lane < to; lane++) {
      const i = 2 * q + lane;
      let magnitude = HALF;
      for (let k = 0; k < one.count[i]!; k++) {
        const w = one.weights[i * one.size + k]!;
        weights[q * size + one.start[i]! - start[q]! + k]! += lane ? w * LANE : w;
        magnitude += 255 * Math.abs(w);
      }
      if (magnitude >= LANE / 2) throw new Error(`resizeGrey: Lanczos-3 weights for ${from} → ${to} px overflow a ${Math.log2(LANE)}-bit lane (${magnitude})`);
    }
  }
  return { pairs, start, count, weights, size };
}

/** Scratch for the intermediate image and the output, grown on demand: one crop after another reuses them. */
let midScratch = new Uint8ClampedArray(0);
let outScratch = new Uint8ClampedArray(0);

/**
 * Resize a `region` of one-channel 8-bit `pixels` (row length `width`) to `outWidth`×`outHeight`,
 * ignoring aspect (squash), in JavaScript. Horizontal pass first, then vertical, as libvips does.
 */
function resizeGreyJs(pixels: Uint8Array, width: number, region: Region, outWidth: number, outHeight: number): Buffer {
  const h = cachedTaps(pairTapCache, region.width, outWidth, pairTaps);
  const v = cachedTaps(pairTapCache, region.height, outHeight, pairTaps);
  const rows = region.height;
  // Rows of the intermediate and the output have room for a whole last pair.
  const midWidth = 2 * h.pairs;
  if (midScratch.length < midWidth * rows) midScratch = new Uint8ClampedArray(midWidth * rows);
  if (outScratch.length < outWidth * 2 * v.pairs) outScratch = new Uint8ClampedArray(outWidth * 2 * v.pairs);
  // A plain Uint8Array view, so the loops see one array type whether a Buffer or not came in.
  const source = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.length);
  horizontalPass(source, width, region.x, region.y, rows, h, midScratch, midWidth);
  verticalPass(midScratch, midWidth, outWidth, v, outScratch);
  const out = Buffer.allocUnsafe(outWidth * outHeight);
  out.set(outScratch.subarray(0, outWidth * outHeight));
  return out;
}

/**
 * Round a packed pair of sums (`HALF` added to each) to 8 bits and store them at `at` and
 * `at + next`; the Uint8ClampedArray clamps, as libvips' uchar passes do.
 */
function storePair(to: Uint8ClampedArray, at: number, next: number, acc: number): void {
  const high = Math.round(acc / LANE);
  to[at] = (acc - high * LANE) >> SHIFT;
  to[at + next] = high >> SHIFT;
}

/** Both lanes start at HALF, so the shift rounds. */
const ROUNDING = HALF + HALF * LANE;

/**
 * Each source row to `2 × pairs` samples, into `mid` (row-major, `midWidth` a row), four rows
 * to a weight load.
 */
function horizontalPass(src: Uint8Array, width: number, x0: number, y0: number, rows: number, t: PairTaps, mid: Uint8ClampedArray, midWidth: number): void {
  const { pairs, start, count, weights, size } = t;
  const w1 = width;
  const w2 = 2 * width;
  const w3 = 3 * width;
  let y = 0;
  for (; y + 4 <= rows; y += 4) {
    const row = (y0 + y) * width + x0;
    const o = y * midWidth;
    for (let q = 0; q < pairs; q++) {
      let a0 = ROUNDING;
      let a1 = ROUNDING;
      let a2 = ROUNDING;
      let a3 = ROUNDING;
      for (let k = q * size, end = k + count[q]!, s = row + start[q]!; k < end; k++, s++) {
        const w = weights[k]!;
        a0 += src[s]! * w;
        a1 += src[s + w1]! * w;
        a2 += src[s + w2]! * w;
        a3 += src[s + w3]! * w;
      }
      storePair(mid, o + 2 * q, 1, a0);
      storePair(mid, o + midWidth + 2 * q, 1, a1);
      storePair(mid, o + 2 * midWidth + 2 * q, 1, a2);
      storePair(mid, o + 3 * midWidth + 2 * q, 1, a3);
    }
  }
  for (; y < rows; y++) {
    const row = (y0 + y) * width + x0;
    for (let q = 0; q < pairs; q++) {
      let a = ROUNDING;
      for (let k = q * size, end = k + count[q]!, s = row + start[q]!; k < end; k++, s++) a += src[s]! * weights[k]!;
      storePair(mid, y * midWidth + 2 * q, 1, a);
    }
  }
}

/**
 * Each column of `mid` to `2 × pairs` samples, into `out` (row-major, `outWidth` a row), four
 * columns to a weight load.
 */
function verticalPass(mid: Uint8ClampedArray, midWidth: number, outWidth: number, t: PairTaps, out: Uint8ClampedArray): void {
  const { pairs, start, count, weights, size } = t;
  for (let q = 0; q < pairs; q++) {
    const first = start[q]! * midWidth;
    const k0 = q * size;
    const k1 = k0 + count[q]!;
    const o = 2 * q * outWidth;
    let i = 0;
    for (; i + 4 <= outWidth; i += 4) {
      let a0 = ROUNDING;
      let a1 = ROUNDING;
      let a2 = ROUNDING;
      let a3 = ROUNDING;
      for (let k = k0, s = first + i; k < k1; k++, s += midWidth) {
        const w = weights[k]!;
        a0 += mid[s]! * w;
        a1 += mid[s + 1]! * w;
        a2 += mid[s + 2]! * w;
        a3 += mid[s + 3]! * w;
      }
      storePair(out, o + i, outWidth, a0);
      storePair(out, o + i + 1, outWidth, a1);
      storePair(out, o + i + 2, outWidth, a2);
      storePair(out, o + i + 3, outWidth, a3);
    }
    for (; i < outWidth; i++) {
      let a = ROUNDING;
      for (let k = k0, s = first + i; k < k1; k++, s += midWidth) a += mid[s]! * weights[k]!;
      storePair(out, o + i, outWidth, a);
    }
  }
}
