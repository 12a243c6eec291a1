/**
 * Lanczos-3 resampling of small 8-bit grey images, for crops, with libvips' `reduce` arithmetic:
 * the kernel stretched by the shrink factor, pixel centres aligned, weights normalised per output
 * pixel in 12-bit fixed point, rounded to 8 bits after each pass. Its bytes are within 2 grey
 * levels of sharp's (mean 0.23, test/classify-png.test.ts), without a sharp pipeline, whose set-up
 * and thread-pool hop cost more than the ~0.3 M multiply-adds a 200-px crop needs. Large frames
 * stay with sharp (they are not cheaper here).
 *
 * The multiply-adds run in WebAssembly SIMD (simd/kernels.wat `filterPass`: eight taps of four
 * rows a step, exact i32 sums): about 0.05 ms of CPU for a 130–230 px crop to 64×64, against
 * 0.26–0.28 ms for the best JavaScript of it (two outputs packed in each float64) and 0.5 ms
 * before that. The bytes are held to the first JavaScript code's by
 * test/classify-preprocess-exact.test.ts. Where the runtime has no WebAssembly SIMD,
 * `canResizeGrey()` is false and crops go to sharp.
 */
import { simdKernels } from './simd/index.js';

/** Above this many source pixels, leave resizing to sharp. */
export const JS_RESAMPLE_MAX_PIXELS = 512 * 512;

/** Fixed-point one: weights are in 1/4096ths (libvips' fixed point for 8-bit images). */
const ONE = 1 << 12;

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

/** One axis's windows as `filterPass` reads them. */
interface Taps {
  /** First source index of each output's window. */
  start: Int32Array;
  /** `taps` weights per output (i16, 1/4096ths), 0 past the output's own window. */
  weights: Int16Array;
  /** Weights per output: the longest window rounded up to the kernel's eight taps a step. */
  taps: number;
}

const tapCache = new Map<string, Taps>();

/** Weights mapping `from` samples to `to` samples along one axis (cached: crops repeat sizes). */
function taps(from: number, to: number): Taps {
  const key = `${from}:${to}`;
  const cached = tapCache.get(key);
  if (cached) return cached;
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
  const t = { start: one.start, weights, taps: size };
  if (tapCache.size > 256) tapCache.clear();
  tapCache.set(key, t);
  return t;
}

/** Whether `resizeGrey` can run here (WebAssembly SIMD); otherwise crops go to sharp. */
export function canResizeGrey(): boolean {
  return simdKernels() !== undefined;
}

const up4 = (n: number) => (n + 3) & ~3;

/**
 * Resize a `region` of one-channel 8-bit `pixels` (row length `width`) to `outWidth`×`outHeight`,
 * ignoring aspect (squash). Horizontal pass first, then vertical, as libvips does: the first
 * pass writes its rows transposed, the second filters those (the columns) and writes upright.
 */
export function resizeGrey(
  pixels: Uint8Array,
  width: number,
  region: { x: number; y: number; width: number; height: number },
  outWidth: number,
  outHeight: number,
): Buffer {
  const kernels = simdKernels();
  if (!kernels) throw new Error('resizeGrey: this runtime has no WebAssembly SIMD (check canResizeGrey() first)');
  const h = taps(region.width, outWidth);
  const v = taps(region.height, outHeight);
  // Layout: the region (compact rows), the transposed intermediate, the output, the taps. The
  // kernel runs rows in fours and reads `taps` bytes from a window's start: each buffer has
  // room for its last rows of four and that much slack after it.
  const slack = Math.max(h.taps, v.taps) + 16;
  const midStride = up4(region.height);
  const outStride = up4(outWidth);
  const srcAt = 0;
  const midAt = srcAt + up4(region.height) * region.width + slack;
  const outAt = midAt + up4(outWidth) * midStride + slack;
  const hStartAt = (outAt + outHeight * outStride + 3) & ~3;
  const vStartAt = hStartAt + 4 * outWidth;
  const hWeightsAt = vStartAt + 4 * outHeight;
  const vWeightsAt = hWeightsAt + 2 * h.weights.length;
  const memory = kernels.reserve(vWeightsAt + 2 * v.weights.length);
  const bytes = new Uint8Array(memory);
  for (let y = 0, from = region.y * width + region.x; y < region.height; y++, from += width) {
    bytes.set(pixels.subarray(from, from + region.width), srcAt + y * region.width);
  }
  new Int32Array(memory, hStartAt, outWidth).set(h.start);
  new Int32Array(memory, vStartAt, outHeight).set(v.start);
  new Int16Array(memory, hWeightsAt, h.weights.length).set(h.weights);
  new Int16Array(memory, vWeightsAt, v.weights.length).set(v.weights);
  kernels.filterPass(srcAt, region.width, region.height, outWidth, hStartAt, hWeightsAt, h.taps, midAt, midStride);
  kernels.filterPass(midAt, midStride, outWidth, outHeight, vStartAt, vWeightsAt, v.taps, outAt, outStride);
  const out = Buffer.allocUnsafe(outWidth * outHeight);
  if (outStride === outWidth) out.set(bytes.subarray(outAt, outAt + outWidth * outHeight));
  else for (let y = 0; y < outHeight; y++) out.set(bytes.subarray(outAt + y * outStride, outAt + y * outStride + outWidth), y * outWidth);
  return out;
}
