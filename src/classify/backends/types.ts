/**
 * One inference engine behind one small interface, so the classify stage neither knows nor
 * cares whether onnxruntime or TF.js, GPU or CPU, is doing the work.
 */
import type { ModelCard } from '../../model/card.js';
import type { LinearHead } from '../feature-map.js';
import type { FeatureMap } from '../feature-pool.js';
import type { ImageSpec, WholeOutcome } from '../image-prep.js';

export type { FeatureMap } from '../feature-pool.js';

export type BackendChoice = 'auto' | 'onnx' | 'tfjs';

export interface BackendInit {
  /** Folder holding card.json. */
  modelDir: string;
  card: ModelCard;
  backend: BackendChoice;
  /** CPU threads for the engine (onnxruntime intra-op); defaults to the cores available. */
  threads?: number;
  /** Largest batch the caller sends; GPU engines pad every batch to it (fixed shapes). */
  maxBatchSize: number;
  /** Also open the model's trunk for feature-map inference (feature-map.ts), where the engine can. */
  featureMap?: boolean;
}

/** Whether a backend runs the model's trunk over whole frames, and the head to apply to pooled windows. */
export type FeatureMapSupport = { supported: true; head: LinearHead } | { supported: false; reason: string };

export interface BackendOutput {
  /** P(PG) per image. */
  pPG: Float32Array;
  /** Embedding per image, `dim` floats each, when the card names an embedding output. */
  embedding?: Float32Array;
  embeddingDim?: number;
}

export interface InferenceBackend {
  /** `onnx` or `tfjs`. */
  readonly name: string;
  /** Where it runs: `cpu`, `cuda`, `tensorrt`, `webgpu`, `wasm`, `tfjs-node`, `tfjs-node-gpu`. */
  readonly device: string;
  /** Every batch is padded to this size (GPU engines with fixed shapes); undefined = any size. */
  readonly fixedBatch?: number;
  /** `tensor` holds `n` images laid out as the card says. */
  run(tensor: Float32Array, n: number): Promise<BackendOutput>;
  /** Set when `featureMap` was asked for: supported (with the head) or why not. */
  readonly featureMap?: FeatureMapSupport;
  /**
   * The trunk on `n` images of `width`×`height` (laid out as the card says, at that size):
   * the feature maps, [n, C, cells high, cells wide]. Only when `featureMap.supported`.
   */
  runFeatureMap?(tensor: Float32Array, n: number, width: number, height: number): Promise<FeatureMap>;
  /**
   * Backends on a worker thread: decode, gate and resize whole images there (image-prep.ts's
   * `prepareWhole`), one outcome per image, so that thread shares the preprocessing.
   */
  prepareWhole?(images: Buffer[], spec: ImageSpec): Promise<WholeOutcome[]>;
  close(): Promise<void>;
}

/** P(PG) out of a model's output rows, as the card's `output` says. */
export function pPGFromOutput(card: ModelCard, data: ArrayLike<number>, n: number): Float32Array {
  const out = new Float32Array(n);
  const width = data.length / n;
  if (card.output.kind === 'sigmoid') {
    if (width !== 1)
      throw new Error(`model ${card.name}: output.kind "sigmoid" expects 1 value per image, the model gives ${width}; use "softmax" with pgIndex`);
    // Exports that drop the final activation give logits; a value outside [0,1] can only be one.
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      out[i] = v >= 0 && v <= 1 ? v : 1 / (1 + Math.exp(-v));
    }
  } else {
    const k = card.output.pgIndex ?? 1;
    if (k >= width) throw new Error(`model ${card.name}: output.pgIndex ${k} is out of range, the model gives ${width} values per image`);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      let inRange = true;
      let max = -Infinity;
      for (let j = 0; j < width; j++) {
        const v = data[i * width + j]!;
        sum += v;
        if (v < 0 || v > 1) inRange = false;
        if (v > max) max = v;
      }
      if (inRange && Math.abs(sum - 1) < 1e-3) {
        out[i] = data[i * width + k]!;
      } else {
        // Logits (no softmax layer in the export): apply it here, stably.
        let z = 0;
        for (let j = 0; j < width; j++) z += Math.exp(data[i * width + j]! - max);
        out[i] = Math.exp(data[i * width + k]! - max) / z;
      }
    }
  }
  return out;
}
