/**
 * The WebAssembly SIMD kernels (kernels.wat, compiled into kernels-wasm.ts), one instance per
 * thread: the main thread and the inference worker each compile their own on first use. Each
 * caller lays its buffers out in the instance's memory (`reserve`), calls a kernel with their
 * offsets and reads its results back, all synchronously: nothing else runs on the thread
 * between, so one memory serves every caller of the thread.
 */
import { KERNELS_WASM_BASE64 } from './kernels-wasm.js';

/** As much of the WebAssembly JS API as is used here (TypeScript's lib has it only with the DOM's). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: object };
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

/** Edge counts of a plane (probe-gate.ts). */
export interface EdgeCounts {
  edges: number;
  alongX: number;
  alongY: number;
}

export class SimdKernels {
  private constructor(private readonly exports: Exports) {}

  /** Compiles the kernels; undefined where this runtime has no WebAssembly SIMD (a CPU without SSE4.1, a build without wasm). */
  static load(): SimdKernels | undefined {
    if (!wasm) return undefined;
    try {
      const module = new wasm.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
      return new SimdKernels(new wasm.Instance(module).exports as Exports);
    } catch {
      return undefined;
    }
  }

  /** The instance's memory, at least `bytes` long; a view taken before a later `reserve` may be detached. */
  reserve(bytes: number): ArrayBuffer {
    const { memory } = this.exports;
    const missing = bytes - memory.buffer.byteLength;
    if (missing > 0) memory.grow(Math.ceil(missing / 65_536));
    return memory.buffer;
  }

  get filterPass(): Exports['filterPass'] {
    return this.exports.filterPass;
  }

  /**
   * Copies a w×h plane to the start of memory, with a row and 16 bytes of slack after it (the
   * kernels' loads run past a row's end), and reserves `extra` bytes after that, 8-aligned; their
   * offset.
   */
  private plane(grey: Uint8Array, w: number, h: number, extra: number): number {
    const after = (w * h + w + 16 + 7) & ~7;
    new Uint8Array(this.reserve(after + extra), 0, w * h).set(grey.subarray(0, w * h));
    return after;
  }

  /** Σv, Σv² and the count of v ≥ 250 over a plane's bytes (quality.ts). */
  levelSums(grey: Uint8Array, n: number): { sum: number; sumSq: number; saturated: number } {
    const out = this.plane(grey, n, 1, 24);
    this.exports.levelSums(0, n, out);
    const [sum, sumSq, saturated] = new Float64Array(this.exports.memory.buffer, out, 3);
    return { sum: sum!, sumSq: sumSq!, saturated: saturated! };
  }

  /** Σl and Σl² of the 4-neighbour Laplacian over a plane's interior (w, h ≥ 3; quality.ts). */
  laplacianSums(grey: Uint8Array, w: number, h: number): { sum: number; sumSq: number } {
    const out = this.plane(grey, w, h, 16);
    this.exports.laplacianSums(0, w, h, out);
    const [sum, sumSq] = new Float64Array(this.exports.memory.buffer, out, 2);
    return { sum: sum!, sumSq: sumSq! };
  }

  /** Sums of the bw×bh 4×4 blocks from a plane's top left into `blocks` (probe-gate.ts). */
  blockSums(grey: Uint8Array, w: number, h: number, bw: number, bh: number, blocks: Float32Array): void {
    const out = this.plane(grey, w, h, 4 * bw * bh);
    this.exports.blockSums(0, w, bw, bh, out);
    blocks.set(new Float32Array(this.exports.memory.buffer, out, bw * bh));
  }

  /**
   * Cell sums (added into `cellSum`, `cellSq`, `cellN`, one value a cell each) and edge counts of
   * a plane, every other row and column (probe-gate.ts).
   */
  cellsAndEdges(
    grey: Uint8Array,
    w: number,
    h: number,
    grid: { rows: number; cols: number; colStart: Int32Array; cellSum: Float64Array; cellSq: Float64Array; cellN: Float64Array },
  ): EdgeCounts {
    const { rows, cols, colStart, cellSum, cellSq, cellN } = grid;
    const cells = rows * cols;
    const at = this.plane(grey, w, h, 24 * cells + 4 * (cols + 1) + 16);
    const memory = this.exports.memory.buffer;
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
}

let kernels: SimdKernels | null | undefined;

/**
 * This thread's kernels (compiled on first call), or undefined where WebAssembly SIMD is missing
 * or `CRYSTALWATCH_SIMD=0` turns it off: then grey crops are resized by sharp and the gate
 * statistics run in JavaScript, to the same numbers (the resize to within 2 grey levels).
 */
export function simdKernels(): SimdKernels | undefined {
  if (kernels === undefined) kernels = (process.env.CRYSTALWATCH_SIMD !== '0' && SimdKernels.load()) || null;
  return kernels ?? undefined;
}

/** Test seam: false runs every caller's other path (sharp, JavaScript) on this thread; true loads the kernels again. */
export function setSimdEnabled(enabled: boolean): void {
  kernels = enabled ? undefined : null;
}
