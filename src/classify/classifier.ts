/**
 * Images in, P(PG) out: decode, the model-free gates (quality, "is it a probe image"),
 * whole-image or tiled preprocessing, batched inference on a worker thread, the
 * out-of-distribution gate on the embedding. Used by the classify stage, by
 * `crystalwatch predict`, by the tests and by the bench. Per-image problems never throw:
 * they come back as `predicted: 'error'` (could not use the bytes) or `'unusable'` with a
 * reason from a fixed set (reasons.ts).
 */
import { loadModelCard, type ModelCard } from '../model/card.js';
import type { Tile } from '../bus/messages.js';
import { openBackend, type BackendChoice, type InferenceBackend } from './backends/index.js';
import { startWorkerBackend } from './worker-client.js';
import {
  DEFAULT_MAX_PIXELS,
  channelTransform,
  cropAndResize,
  tilesByFrameResize,
  writeTensor,
  type ChannelTransform,
  type DecodedImage,
  type Region,
} from './preprocess.js';
import { DEFAULT_QUALITY, type QualityThresholds } from './quality.js';
import { DEFAULT_PROBE, type ProbeThresholds } from './probe-gate.js';
import type { GateThresholds } from './gates.js';
import { decodeAndJudge, regionsFor, wholeImageCandidate, type ImageSpec, type TilingOption, type WholeOutcome } from './image-prep.js';
import { oodScorer, type OodScorer } from './ood.js';
import { join } from 'node:path';
import { FeatureMapRunner, featureMapApplies, planFeatureMap } from './feature-plan.js';
import type { ClassifyResult } from './results.js';
import { simdKernels, simdStatus } from './simd/index.js';

export type { ClassifyResult, ErrorResult, JudgedResult, ResultBase, UnusableResult } from './results.js';

/** Tile side when the card gives none: about the size of the crops models are trained on. */
export const DEFAULT_TILE = 224;

export type { TilingOption };

/**
 * Batches of crops of at least this many images hand a share of their decoding and resizing to
 * the inference worker (image-prep.ts), which would otherwise wait for the main thread.
 */
export const WORKER_PREP_MIN_BATCH = 8;
/**
 * The share of a batch's crops the worker prepares: it runs the engine on the whole batch too.
 * Measured on a 2-core CPU machine (src/classify/README.md); with a GPU engine the worker has
 * more time to spare.
 */
export const WORKER_PREP_SHARE = 0.4;

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
  /**
   * Tiled frames: `feature-map` runs the model's convolutional trunk once over the resized frame
   * and pools each tile's window of the feature map (feature-map.ts; ~3× less CNN work at
   * 192/112 tiles); `tiles` runs the whole model on every tile. The two give different
   * embeddings (the trunk sees past a tile's edges), so OOD statistics fit one path only: the
   * card's `ood.frameInference` says which (absent = `tiles`, as every card before it).
   * `auto` (default): `feature-map` when the backend and the graph allow it (onnx, a
   * GlobalAveragePool → Flatten → Gemm head) and the card's statistics, if any, were fitted on
   * it; else `tiles`, with a log line saying why. `feature-map` where it cannot be done fails the load.
   * On the feature-map path `tileResize` does not apply (the frame is resized once), and
   * `onInference` reports frames per trunk run as its batch size. `prefer-feature-map`: for
   * fitting new statistics (refit, calibrate): `feature-map` where the backend and graph allow,
   * whatever the card's statistics were fitted on; the fitter records `info.frameInference`.
   */
  frameInference?: 'feature-map' | 'tiles' | 'auto' | 'prefer-feature-map';
  /** Decompression-bomb guard: larger images are refused undecoded. */
  maxPixels?: number;
  quality?: Partial<QualityThresholds>;
  /**
   * Bounds of the "is it a probe image" check (probe-gate.ts); false turns it off, for models of
   * other imagery and for tests of other parts.
   */
  probe?: Partial<ProbeThresholds> | false;
  /** Run inference on a worker thread (default true); false runs it on the calling thread. */
  worker?: boolean;
  /**
   * Batches of crops (WORKER_PREP_MIN_BATCH or more): the inference worker decodes, gates and
   * resizes a share of them (default true where there is a worker). The answers are the same.
   */
  workerPrep?: boolean;
  /** Engine CPU threads (onnxruntime intra-op). */
  threads?: number;
  /** Called after each inference call, for metrics. */
  onInference?: (seconds: number, batchSize: number) => void;
  log?: (message: string) => void;
}

interface Job {
  image: number;
  region: Region;
  /** Model-input pixels, when already cut (tiles of a frame resized as a whole). */
  pixels?: Buffer;
}

/** Decoded images that passed the model-free gates, cut into model inputs. */
interface Prepared {
  results: (ClassifyResult | undefined)[];
  /** Pixels of the images this thread decoded (not of those the worker prepared). */
  decoded: (DecodedImage | undefined)[];
  /** Size of every image that reached the model. */
  sizes: ({ width: number; height: number } | undefined)[];
  jobs: Job[];
  tiled: Map<number, boolean>;
  /** Tiled frames that go through the feature-map path; their jobs are `firstJob …` in region order. */
  featureFrames: { image: number; regions: Region[]; firstJob: number }[];
}

export class Classifier {
  private closed = false;
  private readonly transform: ChannelTransform;
  private readonly ood?: OodScorer;
  private readonly gates: GateThresholds;
  private readonly maxBatchSize: number;
  private readonly maxPixels: number;
  private readonly tiling: TilingOption;
  private readonly tileSize: { tile: number; stride: number };
  private readonly spec: ImageSpec;
  private featureMap?: FeatureMapRunner;
  /** The worker's last prepare failed: said once, until it answers again. */
  private workerPrepFailing = false;

  private constructor(
    readonly card: ModelCard,
    readonly modelDir: string,
    private readonly backend: InferenceBackend,
    private readonly options: ClassifierOptions,
  ) {
    this.transform = channelTransform(card.input);
    this.gates = {
      quality: { ...DEFAULT_QUALITY, ...options.quality },
      probe: options.probe === false ? false : { ...DEFAULT_PROBE, ...options.probe },
    };
    this.maxBatchSize = options.maxBatchSize ?? 32;
    this.maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
    this.tiling = options.tiling ?? 'auto';
    // Without a card `tiling`, a tile is a typical crop (DESIGN: 151–230 px, DEFAULT_TILE) or the model input
    // if larger — never a small model input, which would cut ordinary crops into tiles.
    const side = Math.max(card.input.width, card.input.height, DEFAULT_TILE);
    const fromCard = card.tiling ?? { tile: side, stride: side };
    this.tileSize = typeof this.tiling === 'object' ? this.tiling : fromCard;
    this.spec = { input: card.input, maxPixels: this.maxPixels, gates: this.gates, tiling: this.tiling, tileSize: this.tileSize };
    // The card was checked when it was loaded: statistics present means scorable, with an embedding output.
    if (card.ood) this.ood = oodScorer(card.ood, join(modelDir, 'card.json'));
  }

  static async load(modelDir: string, options: ClassifierOptions = {}): Promise<Classifier> {
    const { card, dir } = await loadModelCard(modelDir);
    const frameInference = options.frameInference ?? 'auto';
    // Fitting new statistics: the card's old ones say nothing about the path to take.
    const refitting = frameInference === 'prefer-feature-map';
    const oodFittedOn = card.ood && !refitting ? (card.ood.frameInference === 'feature-map' ? 'feature-map' : 'tiles') : undefined;
    const init = {
      modelDir: dir,
      card,
      backend: options.backend ?? 'auto',
      maxBatchSize: options.maxBatchSize ?? 32,
      // Left out: the backend's default (CRYSTALWATCH_ORT_THREADS, else the cores available).
      threads: options.threads,
      featureMap: options.tiling !== 'off' && (frameInference === 'feature-map' || refitting || (frameInference === 'auto' && oodFittedOn !== 'tiles')),
    };
    const backend = options.worker === false ? await openBackend(init, options.log) : await startWorkerBackend(init, options.log);
    const classifier = new Classifier(card, dir, backend, options);
    // Said with the other choices of path: every user of a classifier (the stage, predict, calibrate) sees it.
    if (!simdKernels()) {
      options.log?.(
        `classify: crop resizing and gate statistics run in ${simdStatus()}: the same numbers at about 3.5× their CPU (0.5 against 0.14 ms for a 200-px crop on the 2-core development machine)`,
      );
    }
    try {
      await classifier.checkEmbedding();
      if (init.featureMap) await classifier.planFrames(frameInference === 'feature-map', oodFittedOn);
      else if (frameInference === 'auto' && oodFittedOn === 'tiles' && options.tiling !== 'off') {
        options.log?.(
          `classify: tiled frames run the whole model per tile: the card's ood statistics were fitted on per-tile embeddings (no ood.frameInference "feature-map"); refit them with frameInference "feature-map" to use feature-map inference`,
        );
      }
    } catch (err) {
      await classifier.close();
      throw err;
    }
    return classifier;
  }

  /** The statistics must describe this model's embedding: one blank batch at load tells. */
  private async checkEmbedding(): Promise<void> {
    if (!this.ood) return;
    const { input } = this.card;
    const n = Math.max(1, this.backend.fixedBatch ?? 0);
    const out = await this.backend.run(new Float32Array(n * input.width * input.height * input.channels), n);
    const where = join(this.modelDir, 'card.json');
    if (!out.embedding || !out.embeddingDim) {
      throw new Error(
        `model card ${where}: ood statistics need the embedding output "${this.card.output.embeddingName}", but the ${this.backend.name} backend returned none`,
      );
    }
    if (out.embeddingDim !== this.ood.dimensions) {
      throw new Error(
        `model card ${where}: ood.dimensions is ${this.ood.dimensions} but the model's embedding output "${this.card.output.embeddingName}" has ${out.embeddingDim} values; use the card that came with this model`,
      );
    }
  }

  /** Feature-map inference for tiled frames when the backend and graph allow it (a refusal names why). */
  private async planFrames(required: boolean, oodFittedOn: 'feature-map' | 'tiles' | undefined): Promise<void> {
    const plan = await planFeatureMap(this.backend, this.card, this.transform);
    if ('reason' in plan) {
      if (required) throw new Error(`model ${this.card.name}: frameInference "feature-map" is not possible: ${plan.reason}; use "auto" or "tiles"`);
      const ood = oodFittedOn === 'feature-map' ? "; the card's ood statistics were fitted on feature-map embeddings, so tiled frames' ood scores are off" : '';
      this.options.log?.(`classify: tiled frames run the whole model per tile (no feature-map inference: ${plan.reason})${ood}`);
      return;
    }
    if (oodFittedOn === 'tiles') {
      this.options.log?.(
        `classify: feature-map inference for tiled frames, but the card's ood statistics were fitted per tile: refit them with frameInference "feature-map"`,
      );
    }
    this.featureMap = new FeatureMapRunner(this.backend, this.card, this.transform, plan, this.tileSize.tile, this.options.onInference);
  }

  /** `frameInference`: how tiled frames are run, `feature-map` or `tiles`. */
  get info(): { backend: string; device: string; model: string; frameInference: 'feature-map' | 'tiles' } {
    return {
      backend: this.backend.name,
      device: this.backend.device,
      model: `${this.card.name}@${this.card.version}`,
      frameInference: this.featureMap ? 'feature-map' : 'tiles',
    };
  }

  /** The images of this batch the worker prepares (crop-sized files, a share of them), by index. */
  private workerShare(images: Buffer[]): number[] {
    if (!this.backend.prepareWhole || this.options.workerPrep === false || images.length < WORKER_PREP_MIN_BATCH) return [];
    const candidates = images.flatMap((bytes, i) => (wholeImageCandidate(bytes, this.spec) ? [i] : []));
    // Spread evenly: candidate m goes when the running share crosses a whole image.
    return candidates.filter((_, m) => Math.floor((m + 1) * WORKER_PREP_SHARE) > Math.floor(m * WORKER_PREP_SHARE));
  }

  /** The worker's outcomes for `indices`, or undefined when it could not answer (this thread prepares them then). */
  private async prepareOnWorker(images: Buffer[], indices: number[]): Promise<WholeOutcome[] | undefined> {
    if (indices.length === 0) return [];
    try {
      const outcomes = await this.backend.prepareWhole!(
        indices.map((i) => images[i]!),
        this.spec,
      );
      if (this.workerPrepFailing) this.options.log?.('classify: the worker prepares its share of crops again');
      this.workerPrepFailing = false;
      return outcomes;
    } catch (err) {
      if (!this.workerPrepFailing)
        this.options.log?.(`classify: the worker could not prepare its share of crops (${(err as Error).message}); this thread prepares them until it can`);
      this.workerPrepFailing = true;
      return undefined;
    }
  }

  /** Decode, gate, and cut every image into model inputs (tiles of a frame: one resize). */
  private async prepare(images: Buffer[]): Promise<Prepared> {
    const results: (ClassifyResult | undefined)[] = new Array(images.length);
    const decoded: (DecodedImage | undefined)[] = new Array(images.length);
    const sizes: Prepared['sizes'] = new Array(images.length);
    /** Model-input pixels the worker prepared, by image. */
    const ready = new Map<number, Buffer>();
    const here = async (i: number) => {
      const judged = await decodeAndJudge(images[i]!, this.spec);
      if ('result' in judged) results[i] = judged.result;
      else decoded[i] = judged.image;
    };
    const share = this.workerShare(images);
    const onWorker = new Set(share);
    const [outcomes] = await Promise.all([this.prepareOnWorker(images, share), Promise.all(images.flatMap((_, i) => (onWorker.has(i) ? [] : [here(i)])))]);
    const leftOver: number[] = [];
    share.forEach((i, k) => {
      const outcome = outcomes?.[k];
      if (outcome?.kind === 'result') results[i] = outcome.result;
      else if (outcome?.kind === 'ready') {
        sizes[i] = { width: outcome.width, height: outcome.height };
        ready.set(i, outcome.pixels);
      } else leftOver.push(i); // to be tiled after all, or the worker failed
    });
    await Promise.all(leftOver.map(here));

    const jobs: Job[] = [];
    const tiled = new Map<number, boolean>();
    const framesToTile: Prepared['featureFrames'] = [];
    const featureFrames: Prepared['featureFrames'] = [];
    // In image order, so a batch's inference calls hold the same inputs wherever they were prepared.
    for (let i = 0; i < images.length; i++) {
      const pixels = ready.get(i);
      if (pixels) {
        tiled.set(i, false);
        jobs.push({ image: i, region: { x: 0, y: 0, ...sizes[i]! }, pixels });
        continue;
      }
      const image = decoded[i];
      if (!image) continue;
      sizes[i] = { width: image.width, height: image.height };
      const { regions, tiled: isTiled } = regionsFor(image, this.spec);
      tiled.set(i, isTiled);
      const frame = { image: i, regions, firstJob: jobs.length };
      if (isTiled && this.featureMap && featureMapApplies(regions, this.tileSize.tile, this.card.input)) featureFrames.push(frame);
      else if (isTiled) framesToTile.push(frame);
      for (const region of regions) jobs.push({ image: i, region });
    }
    await Promise.all(
      (this.options.tileResize === 'tile' ? [] : framesToTile).map(async ({ image, regions, firstJob }) => {
        const tiles = await tilesByFrameResize(decoded[image]!, regions, this.tileSize.tile, this.card.input);
        tiles?.forEach((pixels, k) => (jobs[firstJob + k]!.pixels = pixels));
      }),
    );
    return { results, decoded, sizes, jobs, tiled, featureFrames };
  }

  /** Run every job through the model: P(PG) per job, and the embedding when the card names one. */
  private async infer(p: Prepared, onEmbedding?: (job: number, embedding: Float32Array) => void): Promise<{ pPG: Float32Array; ood: Float64Array }> {
    const { jobs, decoded, featureFrames } = p;
    const pPG = new Float32Array(jobs.length);
    const ood = new Float64Array(jobs.length);
    const record = (j: number, value: number, embedding: Float32Array | undefined) => {
      pPG[j] = value;
      if (!embedding) return;
      onEmbedding?.(j, embedding);
      if (this.ood) ood[j] = this.ood.score(embedding);
    };
    // Feature-map frames: one trunk run per frame, every tile pooled from it.
    const byFeatureMap = new Uint8Array(jobs.length);
    if (featureFrames.length > 0) {
      const answers = await this.featureMap!.run(featureFrames.map((f) => ({ image: decoded[f.image]!, regions: f.regions })));
      featureFrames.forEach(({ regions, firstJob }, f) => {
        const { pPG: tilePPG, embedding, dim } = answers[f]!;
        for (let t = 0; t < regions.length; t++) {
          byFeatureMap[firstJob + t] = 1;
          record(firstJob + t, tilePPG[t]!, embedding?.subarray(t * dim, (t + 1) * dim));
        }
      });
    }
    const perInput = jobs.map((_, j) => j).filter((j) => !byFeatureMap[j]);
    const { input } = this.card;
    const perImage = input.width * input.height * input.channels;
    for (let start = 0; start < perInput.length; start += this.maxBatchSize) {
      const chunk = perInput.slice(start, start + this.maxBatchSize);
      const n = Math.max(chunk.length, this.backend.fixedBatch ?? 0);
      // Padding slots stay zero: their outputs are read and dropped.
      const tensor = new Float32Array(n * perImage);
      await Promise.all(
        chunk.map(async (j, k) => {
          const job = jobs[j]!;
          const pixels = job.pixels ?? (await cropAndResize(decoded[job.image]!, job.region, input));
          writeTensor(pixels, input, this.transform, tensor, k);
          job.pixels = undefined; // let the tile's bytes go once they are in the tensor
        }),
      );
      const t0 = performance.now();
      const out = await this.backend.run(tensor, n);
      this.options.onInference?.((performance.now() - t0) / 1000, chunk.length);
      const d = out.embeddingDim ?? 0;
      chunk.forEach((j, k) => record(j, out.pPG[k]!, out.embedding && d ? out.embedding.subarray(k * d, (k + 1) * d) : undefined));
    }
    return { pPG, ood };
  }

  /** Classify each image; the answer has one result per image, in order. */
  async classify(images: Buffer[]): Promise<ClassifyResult[]> {
    if (this.closed) throw new Error('classifier is closed');
    const prepared = await this.prepare(images);
    const { results, sizes, jobs, tiled } = prepared;
    const { pPG, ood } = await this.infer(prepared);

    // Fold tiles back into frames: a frame is as PG as its most PG tile.
    const threshold = this.card.threshold;
    for (const [i, indices] of jobsByImage(jobs)) {
      const size = sizes[i]!;
      let best = 0;
      let oodSum = 0;
      const tiles: Tile[] = [];
      for (const j of indices) {
        best = Math.max(best, pPG[j]!);
        oodSum += ood[j]!;
        if (tiled.get(i) && pPG[j]! >= threshold) tiles.push({ ...jobs[j]!.region, pPG: round(pPG[j]!) });
      }
      // Tiled frames: the mean tile score, so one odd tile (a vessel edge) does not void a frame.
      const score = this.ood ? round(oodSum / indices.length) : undefined;
      const extra = { ...(score !== undefined ? { ood: score } : {}), ...(tiled.get(i) ? { tiles } : {}), ...size };
      if (this.ood && score! > this.ood.threshold) {
        results[i] = {
          predicted: 'unusable',
          pPG: null,
          reason: 'out-of-distribution',
          detail: `embedding score ${score} > ${round(this.ood.threshold)}`,
          ...extra,
        };
      } else {
        results[i] = { predicted: best >= threshold ? 'pg' : 'cex', pPG: round(best), ...extra };
      }
    }
    return results as ClassifyResult[];
  }

  /**
   * The embedding and P(PG) of every model input (one per crop, one per tile of a frame) of the
   * images that pass the model-free gates, exactly as `classify` computes them: for fitting the
   * out-of-distribution statistics on what this classifier will see. `undefined` for images
   * that were refused or could not be decoded.
   */
  async embed(images: Buffer[]): Promise<({ embedding: Float32Array; pPG: number }[] | undefined)[]> {
    if (this.closed) throw new Error('classifier is closed');
    if (!this.card.output.embeddingName) throw new Error(`model ${this.card.name}: the card names no output.embeddingName; there is no embedding to return`);
    const prepared = await this.prepare(images);
    const embeddings: Float32Array[] = [];
    const { pPG } = await this.infer(prepared, (j, embedding) => (embeddings[j] = Float32Array.from(embedding)));
    const out: ({ embedding: Float32Array; pPG: number }[] | undefined)[] = images.map(() => undefined);
    prepared.jobs.forEach((job, j) => (out[job.image] ??= []).push({ embedding: embeddings[j]!, pPG: pPG[j]! }));
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
  }
}

function jobsByImage(jobs: Job[]): Map<number, number[]> {
  const byImage = new Map<number, number[]>();
  jobs.forEach((job, j) => {
    const list = byImage.get(job.image) ?? [];
    list.push(j);
    byImage.set(job.image, list);
  });
  return byImage;
}

/** Six decimals: more than any threshold needs, and stable JSON. */
function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}
