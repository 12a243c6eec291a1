/**
 * Images in, P(PG) out: decode, quality gate, whole-image or tiled preprocessing, batched
 * inference on a worker thread, out-of-distribution check. Used by the classify stage, by
 * `crystalwatch predict`, by the tests and by the bench. Per-image problems never throw:
 * they come back as `predicted: 'error'` (could not use the bytes) or `'unusable'`.
 */
import { availableParallelism } from 'node:os';
import { loadModelCard, type ModelCard } from '../model/card.js';
import type { Tile } from '../bus/messages.js';
import { openBackend, type BackendChoice, type InferenceBackend } from './backends/index.js';
import { startWorkerBackend } from './worker-client.js';
import {
  DEFAULT_MAX_PIXELS,
  ImageDecodeError,
  channelTransform,
  cropAndResize,
  decodeImage,
  tileRegions,
  tilesByFrameResize,
  writeTensor,
  type ChannelTransform,
  type DecodedImage,
  type Region,
} from './preprocess.js';
import { DEFAULT_QUALITY, judgeQuality, qualityStats, type QualityThresholds } from './quality.js';
import { oodScorer, type OodScorer } from './ood.js';

/** Tile side when the card gives none: about the size of the crops models are trained on. */
export const DEFAULT_TILE = 224;

export type TilingOption = { tile: number; stride: number } | 'auto' | 'off';

export interface ClassifierOptions {
  backend?: BackendChoice;
  /** Images per inference call; GPU engines pad every call to this size. Default 32. */
  maxBatchSize?: number;
  /** `auto` (default): tile when the image is over 2× the tile size in both dimensions. */
  tiling?: TilingOption;
  /**
   * Tiled frames: `frame` (default) resizes the whole frame once and cuts the tiles from it;
   * `tile` resizes each tile on its own (a sharp call per tile, ~4× slower on 1280×960).
   * They differ by sub-pixel tile offsets: on the default model, tile P(PG) by up to ~0.15,
   * no class flips in 384 tiles (8 simulator frames).
   */
  tileResize?: 'frame' | 'tile';
  /** Decompression-bomb guard: larger images are refused undecoded. */
  maxPixels?: number;
  quality?: Partial<QualityThresholds>;
  /** Run inference on a worker thread (default true); false runs it on the calling thread. */
  worker?: boolean;
  /** Engine CPU threads (onnxruntime intra-op). */
  threads?: number;
  /** Called after each inference call, for metrics. */
  onInference?: (seconds: number, batchSize: number) => void;
  log?: (message: string) => void;
}

export interface ClassifyResult {
  predicted: 'cex' | 'pg' | 'unusable' | 'error';
  /** P(PG) in [0,1]; null when unusable or an error. */
  pPG: number | null;
  /** Why unusable (`black`, `saturated`, `blank`, `out-of-focus`, `out-of-distribution`) or the error. */
  reason?: string;
  /** For errors: `too-large`, `undecodable`, `empty` (a small set, fit for a metric label). */
  errorKind?: string;
  ood?: number;
  /** Tiled frames: the tiles whose P(PG) is at or above the threshold. */
  tiles?: Tile[];
  width?: number;
  height?: number;
}

interface Job {
  image: number;
  region: Region;
  /** Model-input pixels, when already cut (tiles of a frame resized as a whole). */
  pixels?: Buffer;
}

export class Classifier {
  private closed = false;
  private readonly transform: ChannelTransform;
  private readonly ood?: OodScorer;
  private readonly quality: QualityThresholds;
  private readonly maxBatchSize: number;
  private readonly maxPixels: number;
  private readonly tiling: TilingOption;
  private readonly tileSize: { tile: number; stride: number };

  private constructor(
    readonly card: ModelCard,
    readonly modelDir: string,
    private readonly backend: InferenceBackend,
    private readonly options: ClassifierOptions,
  ) {
    this.transform = channelTransform(card.input);
    this.quality = { ...DEFAULT_QUALITY, ...options.quality };
    this.maxBatchSize = options.maxBatchSize ?? 32;
    this.maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
    this.tiling = options.tiling ?? 'auto';
    // Without a card `tiling`, a tile is a typical crop (DESIGN: 151–230 px, DEFAULT_TILE) or the model input
    // if larger — never a small model input, which would cut ordinary crops into tiles.
    const side = Math.max(card.input.width, card.input.height, DEFAULT_TILE);
    const fromCard = card.tiling ?? { tile: side, stride: side };
    this.tileSize = typeof this.tiling === 'object' ? this.tiling : fromCard;
    const { scorer, problem } = oodScorer(card.ood);
    if (problem) options.log?.(`model ${card.name}: ${problem}`);
    if (scorer && card.output.embeddingName) this.ood = scorer;
    else if (scorer) options.log?.(`model ${card.name}: the card has ood statistics but no output.embeddingName; OOD scoring is off`);
  }

  static async load(modelDir: string, options: ClassifierOptions = {}): Promise<Classifier> {
    const { card, dir } = await loadModelCard(modelDir);
    const init = {
      modelDir: dir,
      card,
      backend: options.backend ?? 'auto',
      maxBatchSize: options.maxBatchSize ?? 32,
      threads: options.threads ?? Math.max(1, availableParallelism()),
    };
    const backend = options.worker === false ? await openBackend(init, options.log) : await startWorkerBackend(init, options.log);
    return new Classifier(card, dir, backend, options);
  }

  get info(): { backend: string; device: string; model: string } {
    return { backend: this.backend.name, device: this.backend.device, model: `${this.card.name}@${this.card.version}` };
  }

  private regionsFor(image: DecodedImage): { regions: Region[]; tiled: boolean } {
    const whole = [{ x: 0, y: 0, width: image.width, height: image.height }];
    if (this.tiling === 'off') return { regions: whole, tiled: false };
    const { tile, stride } = this.tileSize;
    const tiled = this.tiling === 'auto' ? image.width > 2 * tile && image.height > 2 * tile : image.width > tile || image.height > tile;
    return tiled ? { regions: tileRegions(image.width, image.height, tile, stride), tiled: true } : { regions: whole, tiled: false };
  }

  /** Classify each image; the answer has one result per image, in order. */
  async classify(images: Buffer[]): Promise<ClassifyResult[]> {
    if (this.closed) throw new Error('classifier is closed');
    const results: ClassifyResult[] = new Array(images.length);
    const decoded: (DecodedImage | undefined)[] = await Promise.all(
      images.map(async (bytes, i) => {
        try {
          return await decodeImage(bytes, this.maxPixels, { grey: this.card.input.channels === 1 });
        } catch (err) {
          const kind = err instanceof ImageDecodeError ? err.reason : 'undecodable';
          results[i] = { predicted: 'error', pPG: null, reason: (err as Error).message, errorKind: kind };
          return undefined;
        }
      }),
    );
    const jobs: Job[] = [];
    const tiledImage = new Map<number, boolean>();
    const framesToTile: { image: number; regions: Region[]; firstJob: number }[] = [];
    decoded.forEach((image, i) => {
      if (!image) return;
      const unusable = judgeQuality(qualityStats(image), this.quality);
      if (unusable) {
        results[i] = { predicted: 'unusable', pPG: null, reason: unusable, width: image.width, height: image.height };
        return;
      }
      const { regions, tiled } = this.regionsFor(image);
      tiledImage.set(i, tiled);
      if (tiled) framesToTile.push({ image: i, regions, firstJob: jobs.length });
      for (const region of regions) jobs.push({ image: i, region });
    });
    // Tiled frames: one resize per frame instead of one per tile, where that applies.
    await Promise.all(
      (this.options.tileResize === 'tile' ? [] : framesToTile).map(async ({ image, regions, firstJob }) => {
        const tiles = await tilesByFrameResize(decoded[image]!, regions, this.tileSize.tile, this.card.input);
        tiles?.forEach((pixels, k) => (jobs[firstJob + k].pixels = pixels));
      }),
    );

    const pPG = new Float32Array(jobs.length);
    const ood = new Float64Array(jobs.length);
    const { input } = this.card;
    const perImage = input.width * input.height * input.channels;
    for (let start = 0; start < jobs.length; start += this.maxBatchSize) {
      const chunk = jobs.slice(start, start + this.maxBatchSize);
      const n = Math.max(chunk.length, this.backend.fixedBatch ?? 0);
      // Padding slots stay zero: their outputs are read and dropped.
      const tensor = new Float32Array(n * perImage);
      await Promise.all(
        chunk.map(async (job, k) => {
          const pixels = job.pixels ?? (await cropAndResize(decoded[job.image]!, job.region, input));
          writeTensor(pixels, input, this.transform, tensor, k);
          job.pixels = undefined; // let the tile's bytes go once they are in the tensor
        }),
      );
      const t0 = performance.now();
      const out = await this.backend.run(tensor, n);
      this.options.onInference?.((performance.now() - t0) / 1000, chunk.length);
      for (let k = 0; k < chunk.length; k++) {
        pPG[start + k] = out.pPG[k];
        if (this.ood && out.embedding && out.embeddingDim) {
          if (out.embeddingDim !== this.ood.dimensions) {
            throw new Error(`model ${this.card.name}: embedding output has ${out.embeddingDim} values but the card's ood statistics have ${this.ood.dimensions}; use the card that came with this model`);
          }
          ood[start + k] = this.ood.score(out.embedding.subarray(k * out.embeddingDim, (k + 1) * out.embeddingDim));
        }
      }
    }

    // Fold tiles back into frames: a frame is as PG as its most PG tile.
    const threshold = this.card.threshold;
    const byImage = new Map<number, number[]>();
    jobs.forEach((job, j) => {
      const list = byImage.get(job.image) ?? [];
      list.push(j);
      byImage.set(job.image, list);
    });
    for (const [i, indices] of byImage) {
      const image = decoded[i]!;
      let best = 0;
      let oodSum = 0;
      const tiles: Tile[] = [];
      for (const j of indices) {
        best = Math.max(best, pPG[j]);
        oodSum += ood[j];
        if (tiledImage.get(i) && pPG[j] >= threshold) tiles.push({ ...jobs[j].region, pPG: round(pPG[j]) });
      }
      const result: ClassifyResult = { predicted: best >= threshold ? 'pg' : 'cex', pPG: round(best), width: image.width, height: image.height };
      if (tiledImage.get(i)) result.tiles = tiles;
      if (this.ood) {
        // Tiled frames: the mean tile score, so one odd tile (a vessel edge) does not void a frame.
        const score = oodSum / indices.length;
        result.ood = round(score);
        if (score > this.ood.threshold) {
          result.predicted = 'unusable';
          result.reason = 'out-of-distribution';
          result.pPG = null;
        }
      }
      results[i] = result;
    }
    return results;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
  }
}

/** Six decimals: more than any threshold needs, and stable JSON. */
function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}
