/**
 * Feature-map inference, the classifier's half. At load: measure where a tile falls on the
 * trunk's feature map (two probe runs) and check that trunk + head reproduce the whole model
 * on one model-sized input. Per call: each tiled frame is resized once, goes through the trunk
 * once (frames of one size share a run), and every tile gets the mean of the cells it covers as
 * its embedding and the head's P(PG) of that — what the whole model gives a tile, except that
 * the convolutions see across the tile's edges and tile origins round to the nearest cell.
 */
import type { ModelCard, ModelInput } from '../model/card.js';
import { pPGFromOutput, type InferenceBackend } from './backends/types.js';
import type { LinearHead } from './feature-map.js';
import { applyHead, poolWindows, windowStart, type CellGeometry, type FeatureMap } from './feature-pool.js';
import { cropAndResize, writeTensor, type ChannelTransform, type DecodedImage, type Region } from './preprocess.js';

/** Trunk + head must match the whole model this closely on the load-time check (P(PG) and embedding). */
export const FEATURE_MAP_TOLERANCE = 1e-3;
/** Frames of one size per trunk run: enough to amortise a call, small enough to bound memory. */
const FRAMES_PER_RUN = 8;

export interface FeaturePlan {
  head: LinearHead;
  geometry: CellGeometry;
}

/** One tiled frame's answer: per tile P(PG), and the embeddings (`dim` values each) when the card names one. */
export interface FrameTiles {
  pPG: Float32Array;
  embedding?: Float32Array;
  dim: number;
}

/** A deterministic, textured 8-bit image (so the check compares more than a flat field). */
function probePixels(input: ModelInput, width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height * input.channels);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++) for (let c = 0; c < input.channels; c++) out[i++] = (x * 37 + y * 91 + ((x * y) % 53) * 7 + c * 50) & 255;
  }
  return out;
}

function tensorOf(pixels: Buffer, input: ModelInput, transform: ChannelTransform, slots = 1): Float32Array {
  const tensor = new Float32Array(slots * input.width * input.height * input.channels);
  writeTensor(pixels, input, transform, tensor, 0);
  return tensor;
}

/** The plan for this backend and card, or why feature-map inference is off. */
export async function planFeatureMap(backend: InferenceBackend, card: ModelCard, transform: ChannelTransform): Promise<FeaturePlan | { reason: string }> {
  const support = backend.featureMap;
  if (!support || !backend.runFeatureMap) return { reason: `the ${backend.name} backend has no feature-map inference` };
  if (!support.supported) return { reason: support.reason };
  const { input } = card;
  const big = { ...input, width: 2 * input.width, height: 2 * input.height };
  const pixels = probePixels(input, input.width, input.height);
  let single: FeatureMap;
  let double: FeatureMap;
  let whole: Awaited<ReturnType<InferenceBackend['run']>>;
  try {
    const n = Math.max(1, backend.fixedBatch ?? 0);
    whole = await backend.run(tensorOf(pixels, input, transform, n), n);
    single = await backend.runFeatureMap(tensorOf(pixels, input, transform), 1, input.width, input.height);
    double = await backend.runFeatureMap(tensorOf(probePixels(input, big.width, big.height), big, transform), 1, big.width, big.height);
  } catch (err) {
    return { reason: `the trunk does not run on ${input.width}×${input.height} and ${big.width}×${big.height} inputs (${(err as Error).message})` };
  }
  const [, channels, rows, cols] = single.dims;
  if (channels !== support.head.inputs) return { reason: `the trunk gives ${channels} channels, the head reads ${support.head.inputs}` };
  // Twice the input adds (2W − W) / stride cells: that measures the stride whatever the padding.
  const stride = { x: input.width / (double.dims[3] - cols), y: input.height / (double.dims[2] - rows) };
  if (!(stride.x > 0 && stride.y > 0 && Number.isFinite(stride.x) && Number.isFinite(stride.y))) {
    return {
      reason: `the feature map does not grow with the input (${cols}×${rows} cells at ${input.width}×${input.height}, ${double.dims[3]}×${double.dims[2]} at twice that)`,
    };
  }
  const geometry: CellGeometry = { window: { width: cols, height: rows }, stride };
  const embedding = poolWindows(single, 0, [{ cx: 0, cy: 0 }], geometry.window);
  const pPG = pPGFromOutput(card, applyHead(support.head, embedding, 1), 1)[0]!;
  const dPPG = Math.abs(pPG - whole.pPG[0]!);
  let dEmbedding = 0;
  if (whole.embedding && whole.embeddingDim === channels) {
    for (let c = 0; c < channels; c++) dEmbedding = Math.max(dEmbedding, Math.abs(embedding[c]! - whole.embedding[c]!));
  }
  if (dPPG > FEATURE_MAP_TOLERANCE || dEmbedding > FEATURE_MAP_TOLERANCE) {
    return {
      reason: `trunk + head differ from the whole model on a ${input.width}×${input.height} input (|ΔP(PG)| ${dPPG.toExponential(2)}, max |Δembedding| ${dEmbedding.toExponential(2)} > ${FEATURE_MAP_TOLERANCE})`,
    };
  }
  return { head: support.head, geometry };
}

/**
 * Whether a tiled frame can take this path: all tiles `tile`×`tile`, and a resize that keeps
 * them model-sized (the same condition as `tilesByFrameResize`).
 */
export function featureMapApplies(regions: Region[], tile: number, input: ModelInput): boolean {
  return regions.every((r) => r.width === tile && r.height === tile) && (input.resize === 'squash' || input.width === input.height);
}

export class FeatureMapRunner {
  constructor(
    private readonly backend: InferenceBackend,
    private readonly card: ModelCard,
    private readonly transform: ChannelTransform,
    private readonly plan: FeaturePlan,
    /** Tile side in frame pixels (the card's `tiling.tile`). */
    private readonly tile: number,
    private readonly onInference?: (seconds: number, frames: number) => void,
  ) {}

  /** The frame's size once resized so a tile is model-sized, as `tilesByFrameResize` resizes it. */
  private scaledSize(image: DecodedImage): { width: number; height: number } {
    const { input } = this.card;
    return {
      width: Math.max(input.width, Math.round((image.width * input.width) / this.tile)),
      height: Math.max(input.height, Math.round((image.height * input.height) / this.tile)),
    };
  }

  /** Per-tile answers for each frame, in order; frames of one size share trunk runs. */
  async run(frames: { image: DecodedImage; regions: Region[] }[]): Promise<FrameTiles[]> {
    const out: FrameTiles[] = new Array(frames.length);
    const bySize = new Map<string, number[]>();
    frames.forEach(({ image }, i) => {
      const { width, height } = this.scaledSize(image);
      const key = `${width}x${height}`;
      bySize.set(key, [...(bySize.get(key) ?? []), i]);
    });
    for (const indices of bySize.values()) {
      for (let start = 0; start < indices.length; start += FRAMES_PER_RUN) {
        const chunk = indices.slice(start, start + FRAMES_PER_RUN);
        const answers = await this.runChunk(chunk.map((i) => frames[i]!));
        chunk.forEach((i, k) => (out[i] = answers[k]!));
      }
    }
    return out;
  }

  /** Frames of one scaled size: resize, one trunk run, pool and head per tile. */
  private async runChunk(frames: { image: DecodedImage; regions: Region[] }[]): Promise<FrameTiles[]> {
    const size = this.scaledSize(frames[0]!.image);
    const input = { ...this.card.input, ...size };
    const perFrame = size.width * size.height * input.channels;
    const tensor = new Float32Array(frames.length * perFrame);
    await Promise.all(
      frames.map(async ({ image }, k) => {
        const pixels = await cropAndResize(image, { x: 0, y: 0, width: image.width, height: image.height }, { ...input, resize: 'squash' });
        writeTensor(pixels, input, this.transform, tensor, k);
      }),
    );
    const t0 = performance.now();
    const map = await this.backend.runFeatureMap!(tensor, frames.length, size.width, size.height);
    this.onInference?.((performance.now() - t0) / 1000, frames.length);
    const [, channels, rows, cols] = map.dims;
    const { window, stride } = this.plan.geometry;
    if (cols < window.width || rows < window.height) {
      throw new Error(`feature map of a ${size.width}×${size.height} frame is ${cols}×${rows} cells, smaller than one tile's ${window.width}×${window.height}`);
    }
    const { width: tileW, height: tileH } = this.card.input;
    const withEmbedding = this.card.output.embeddingName !== undefined;
    return frames.map(({ regions }, k) => {
      const starts = regions.map((r) => {
        // The tile's origin in the resized frame, exactly as tilesByFrameResize cuts it; then the nearest cell.
        const x = Math.min(size.width - tileW, Math.round((r.x * tileW) / this.tile));
        const y = Math.min(size.height - tileH, Math.round((r.y * tileH) / this.tile));
        return { cx: windowStart(x, stride.x, window.width, cols), cy: windowStart(y, stride.y, window.height, rows) };
      });
      const embedding = poolWindows(map, k, starts, window);
      const pPG = pPGFromOutput(this.card, applyHead(this.plan.head, embedding, regions.length), regions.length);
      return { pPG, dim: channels, ...(withEmbedding ? { embedding } : {}) };
    });
  }
}
