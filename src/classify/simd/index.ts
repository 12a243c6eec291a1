/**
 * The WebAssembly SIMD kernels (kernels.wat, compiled into kernels-wasm.ts by
 * `node scripts/build-wasm.mjs`), one instance per thread: the main thread and the inference
 * worker each compile their own on first use. Every method here lays its buffers out in the
 * instance's memory, calls a kernel with their offsets and reads its results back, all
 * synchronously: nothing else runs on the thread in between, so one memory serves every caller.
 * Each buffer is followed by the slack its kernel's loads run past it (kernels.wat says how far).
 */
import type { CellGrid, EdgeCounts } from '../probe-gate.js';
import type { Region } from '../preprocess.js';
import { KERNELS_WASM_BASE64 } from './kernels-wasm.js';

/** As much of the WebAssembly JS API as is used here (TypeScript's lib has it only with the DOM's). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: object };
  CompileError: new () => Error;
  LinkError: new () => Error;
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

interface Exports {
  memory: WasmMemory;
  filterPass(src: number, srcStride: number, rows: number, outputs: number, start: number, weights: number, taps: number, dst: number, dstStride: number): void;
  levelSums(p: number, n: number, out: number): void;
  laplacianSums(p: number, w: number, h: number, out: number): void;
  cellsAndEdges(p: number, w: number, h: number, rows: number, cols: number, colStart: number, cellSum: number, edgesOut: number): void;
  blockSums(p: number, w: number, bw: number, bh: number, out: number): void;
}

/** One axis of a resize as `filterPass` reads it (resample.ts builds them). */
export interface FilterTaps {
  /** First source index of each output's window. */
  start: Int32Array;
  /** `taps` weights per output (i16, 1/4096ths), 0 past the output's own window. */
  weights: Int16Array;
  /** Weights per output: the longest window rounded up to the kernel's eight taps a step. */
  taps: number;
}

/**
 * Widest plane `laplacianSums` takes: its i32 lanes hold a row's Σl² (≤ 2 × 1020² a lane a step,
 * w / 8 steps) before they are widened to i64. Planes are at most quality.ts's MAX_SIDE (320)
 * wide unless a caller asks for more; wider ones are left to the JavaScript.
 */
const LAPLACIAN_MAX_WIDTH = 8192;

/** Why the kernels do not run on this thread. */
interface Unavailable {
  unavailable: string;
}

const up4 = (n: number) => (n + 3) & ~3;
const up8 = (n: number) => (n + 7) & ~7;

export class SimdKernels {
  private constructor(private readonly exports: Exports) {}

  /** Compiles the kernels, or says why they cannot run here. */
  static load(): SimdKernels | Unavailable {
    if (!wasm) return { unavailable: 'this runtime has no WebAssembly' };
    try {
      const module = new wasm.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
      return new SimdKernels(new wasm.Instance(module).exports as Exports);
    } catch (err) {
      // A CPU or build without SIMD refuses the module; anything else is a bug to surface.
      if (err instanceof wasm.CompileError || err instanceof wasm.LinkError) return { unavailable: `WebAssembly SIMD: ${err.message}` };
      throw err;
    }
  }

  /** The instance's memory, at least `bytes` long; views taken before a later call may be detached. */
  private reserve(bytes: number): ArrayBuffer {
    const { memory } = this.exports;
    const missing = bytes - memory.buffer.byteLength;
    if (missing > 0) memory.grow(Math.ceil(missing / 65_536));
    return memory.buffer;
  }

  /**
   * Lanczos-3 of a `region` of one-channel `pixels` (row length `width`) to `h.start.length` ×
   * `v.start.length` (resample.ts): the horizontal pass writes its rows transposed, so the
   * vertical one filters those (the columns) and writes the image upright.
   */
  resizeGrey(pixels: Uint8Array, width: number, region: Region, h: FilterTaps, v: FilterTaps): Buffer {
    const outWidth = h.start.length;
    const outHeight = v.start.length;
    // filterPass runs rows in fours and reads `taps` bytes from a window's start: each buffer
    // has room for its last rows of four and that much slack after it.
    const slack = Math.max(h.taps, v.taps) + 16;
    const midStride = up4(region.height);
    const outStride = up4(outWidth);
    const midAt = up8(up4(region.height) * region.width + slack);
    const outAt = up8(midAt + up4(outWidth) * midStride + slack);
    const hStartAt = up8(outAt + outHeight * outStride);
    const vStartAt = hStartAt + 4 * outWidth;
    const hWeightsAt = up8(vStartAt + 4 * outHeight);
    const vWeightsAt = hWeightsAt + 2 * h.weights.length;
    const memory = this.reserve(vWeightsAt + 2 * v.weights.length);
    const bytes = new Uint8Array(memory);
    for (let y = 0, from = region.y * width + region.x; y < region.height; y++, from += width) {
      bytes.set(pixels.subarray(from, from + region.width), y * region.width);
    }
    new Int32Array(memory, hStartAt, outWidth).set(h.start);
    new Int32Array(memory, vStartAt, outHeight).set(v.start);
    new Int16Array(memory, hWeightsAt, h.weights.length).set(h.weights);
    new Int16Array(memory, vWeightsAt, v.weights.length).set(v.weights);
    this.exports.filterPass(0, region.width, region.height, outWidth, hStartAt, hWeightsAt, h.taps, midAt, midStride);
    this.exports.filterPass(midAt, midStride, outWidth, outHeight, vStartAt, vWeightsAt, v.taps, outAt, outStride);
    const out = Buffer.allocUnsafe(outWidth * outHeight);
    if (outStride === outWidth) out.set(bytes.subarray(outAt, outAt + outWidth * outHeight));
    else for (let y = 0; y < outHeight; y++) out.set(bytes.subarray(outAt + y * outStride, outAt + y * outStride + outWidth), y * outWidth);
    return out;
  }

  /**
   * Copies a w×h plane to the start of memory, with 16 bytes of slack after it (the gate
   * kernels' 16-byte loads reach the 13th byte past its end), and reserves `extra` bytes after
   * that, 8-aligned; their offset.
   */
  private plane(grey: Uint8Array, w: number, h: number, extra: number): number {
    const after = up8(w * h + 16);
    new Uint8Array(this.reserve(after + extra), 0, w * h).set(grey.subarray(0, w * h));
    return after;
  }

  /** Σv, Σv² and the count of v ≥ 250 over a plane's `n` bytes (quality.ts). */
  levelSums(grey: Uint8Array, n: number): { sum: number; sumSq: number; saturated: number } {
    const out = this.plane(grey, n, 1, 24);
    this.exports.levelSums(0, n, out);
    const [sum, sumSq, saturated] = new Float64Array(this.exports.memory.buffer, out, 3);
    return { sum: sum!, sumSq: sumSq!, saturated: saturated! };
  }

  /** Σl and Σl² of the 4-neighbour Laplacian over a plane's interior (w, h ≥ 3; quality.ts); undefined for a plane too wide for it. */
  laplacianSums(grey: Uint8Array, w: number, h: number): { sum: number; sumSq: number } | undefined {
    if (w > LAPLACIAN_MAX_WIDTH) return undefined;
    const out = this.plane(grey, w, h, 16);
    this.exports.laplacianSums(0, w, h, out);
    const [sum, sumSq] = new Float64Array(this.exports.memory.buffer, out, 2);
    return { sum: sum!, sumSq: sumSq! };
  }

  /** Adds a plane's cell sums into `grid`'s, every other row and column, and counts its edges (probe-gate.ts). */
  cellsAndEdges(grey: Uint8Array, w: number, h: number, grid: CellGrid): EdgeCounts {
    const { rows, cols, colStart, cellSum, cellSq, cellN } = grid;
    const cells = rows * cols;
    const at = this.plane(grey, w, h, 24 * cells + 4 * (cols + 1) + 16);
    const memory = this.exports.memory.buffer;
    // The kernel adds to the sums it finds, as the JavaScript loop does.
    const sums = new Float64Array(memory, at, 3 * cells);
    sums.set(cellSum.subarray(0, cells), 0);
    sums.set(cellSq.subarray(0, cells), cells);
    sums.set(cellN.subarray(0, cells), 2 * cells);
    const colStartAt = at + 24 * cells;
    new Int32Array(memory, colStartAt, cols + 1).set(colStart.subarray(0, cols + 1));
    const edgesAt = colStartAt + 4 * (cols + 1);
    this.exports.cellsAndEdges(0, w, h, rows, cols, colStartAt, at, edgesAt);
    cellSum.set(sums.subarray(0, cells));
    cellSq.set(sums.subarray(cells, 2 * cells));
    cellN.set(sums.subarray(2 * cells, 3 * cells));
    const [edges, alongX, alongY] = new Int32Array(memory, edgesAt, 3);
    return { edges: edges!, alongX: alongX!, alongY: alongY! };
  }

  /** Sums of the bw×bh 4×4 blocks from a plane's top left into `blocks` (probe-gate.ts). */
  blockSums(grey: Uint8Array, w: number, h: number, bw: number, bh: number, blocks: Float32Array): void {
    const out = this.plane(grey, w, h, 4 * bw * bh);
    this.exports.blockSums(0, w, bw, bh, out);
    blocks.set(new Float32Array(this.exports.memory.buffer, out, bw * bh));
  }
}

let kernels: SimdKernels | Unavailable | undefined;

function loaded(): SimdKernels | Unavailable {
  kernels ??= process.env.CRYSTALWATCH_SIMD === '0' ? { unavailable: 'turned off by CRYSTALWATCH_SIMD=0' } : SimdKernels.load();
  return kernels;
}

/**
 * This thread's kernels (compiled on first call), or undefined where WebAssembly SIMD is missing
 * or `CRYSTALWATCH_SIMD=0` turns it off: then the same numbers come from JavaScript.
 */
export function simdKernels(): SimdKernels | undefined {
  const k = loaded();
  return k instanceof SimdKernels ? k : undefined;
}

/** How per-crop pixel work runs on this thread, for the log line a stage writes at start. */
export function simdStatus(): string {
  const k = loaded();
  return k instanceof SimdKernels ? 'WebAssembly SIMD' : `JavaScript (${k.unavailable})`;
}

/**
 * Test seam: false runs every caller's JavaScript path on this thread; true goes back to the
 * default (the kernels, unless CRYSTALWATCH_SIMD=0 or the runtime has no SIMD).
 */
export function setSimdEnabled(enabled: boolean): void {
  kernels = enabled ? undefined : { unavailable: 'turned off by a test' };
}
