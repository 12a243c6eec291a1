/**
 * One interface over the two ways we run a CrystalNet: TF.js (training, the `tfjs` format)
 * and onnxruntime-node (the shipped ONNX, as the classify stage runs it).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './tf.js';
import { withEmbedding } from './architecture.js';
import { ONNX_INPUT, ONNX_OUTPUT_EMBEDDING, ONNX_OUTPUT_PG } from './onnx-export.js';

export interface Prediction {
  pPG: Float32Array;
  /** n × dimensions, or null when the model has no embedding output. */
  embedding: Float32Array | null;
  dimensions: number;
}

export interface Predictor {
  readonly kind: 'tfjs' | 'onnx';
  /** `batch` holds n images, NHWC [n, side, side, 1] in [0, 1]. */
  predict(batch: Float32Array, n: number, side: number): Promise<Prediction>;
  close(): Promise<void>;
}

export function tfjsPredictor(tf: Tf, model: tfTypes.LayersModel): Predictor {
  let both: tfTypes.LayersModel | undefined;
  try {
    both = withEmbedding(tf, model);
  } catch {
    both = undefined;
  }
  return {
    kind: 'tfjs',
    async predict(batch, n, side) {
      const x = tf.tensor4d(batch.subarray(0, n * side * side), [n, side, side, 1]);
      try {
        if (both) {
          const [p, e] = both.predict(x) as [tfTypes.Tensor, tfTypes.Tensor]; // [P(PG), embedding]
          const out = { pPG: (await p.data()) as Float32Array, embedding: (await e.data()) as Float32Array, dimensions: e.shape[1] as number };
          p.dispose();
          e.dispose();
          return out;
        }
        const p = model.predict(x) as tfTypes.Tensor;
        const pPG = (await p.data()) as Float32Array;
        p.dispose();
        return { pPG, embedding: null, dimensions: 0 };
      } finally {
        x.dispose();
      }
    },
    async close() {},
  };
}

export async function onnxPredictor(path: string): Promise<Predictor> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 2 });
  const hasEmbedding = session.outputNames.includes(ONNX_OUTPUT_EMBEDDING);
  const inputName = session.inputNames.includes(ONNX_INPUT) ? ONNX_INPUT : session.inputNames[0];
  const pgName = session.outputNames.includes(ONNX_OUTPUT_PG) ? ONNX_OUTPUT_PG : session.outputNames[0];
  if (inputName === undefined || pgName === undefined)
    throw new Error(`model ${path}: has no ${inputName === undefined ? 'input' : 'output'}; expected ${ONNX_INPUT} -> ${ONNX_OUTPUT_PG}`);
  let closed = false;
  return {
    kind: 'onnx',
    async predict(batch, n, side) {
      const input = new ort.Tensor('float32', batch.subarray(0, n * side * side), [n, side, side, 1]);
      const result = await session.run({ [inputName]: input });
      const pPG = Float32Array.from(result[pgName]!.data as Float32Array);
      const e = hasEmbedding ? result[ONNX_OUTPUT_EMBEDDING] : undefined;
      return { pPG, embedding: e ? Float32Array.from(e.data as Float32Array) : null, dimensions: e ? Number(e.dims[1]) : 0 };
    },
    async close() {
      if (closed) return;
      closed = true;
      await session.release();
    },
  };
}

/** Run a predictor over many images (uint8 grey planes) in batches; pixels scaled to [0, 1]. */
export async function predictAll(predictor: Predictor, pixels: Uint8Array, indices: ArrayLike<number>, side: number, batchSize = 128): Promise<Prediction> {
  const plane = side * side;
  const n = indices.length;
  const pPG = new Float32Array(n);
  let embedding: Float32Array | null = null;
  let dimensions = 0;
  const batch = new Float32Array(batchSize * plane);
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    for (let b = 0; b < count; b++) {
      const src = indices[start + b]! * plane;
      for (let i = 0; i < plane; i++) batch[b * plane + i] = pixels[src + i]! / 255;
    }
    const out = await predictor.predict(batch, count, side);
    pPG.set(out.pPG, start);
    if (out.embedding) {
      dimensions = out.dimensions;
      embedding ??= new Float32Array(n * dimensions);
      embedding.set(out.embedding, start * dimensions);
    }
  }
  return { pPG, embedding, dimensions };
}
