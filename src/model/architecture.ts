/**
 * CrystalNet: a small residual CNN sized for real-time classification on a CPU.
 *
 * Input: one grey channel, 64×64 (NHWC [n, 64, 64, 1]), pixels scaled to [0, 1].
 * Why 64 px: the cue that separates the classes is size and shape — one bright PG plate or
 * agglomerate (tens of pixels across in a 150–230 px crop) among thin CEX needles — which
 * survives a ×3 downscale; 96 px would cost 2.25× the FLOPs for detail the decision does not
 * need, and the classify stage wants ~1,000 crops/s on 2 CPU cores (≤ ~30 MFLOPs/image).
 *
 *   stem   conv3×3/2  1→w    BN ReLU          64→32 px
 *   down1  conv3×3/2  w→2w   BN ReLU          32→16 px
 *   res1   [conv3×3 2w→2w BN ReLU conv3×3 BN] + skip, ReLU
 *   down2  conv3×3/2 2w→4w   BN ReLU          16→8 px
 *   res2   [conv3×3 4w→4w BN ReLU conv3×3 BN] + skip, ReLU
 *   embedding = global average pool (4w values; the OOD score reads it)
 *   dropout, dense 4w→1, sigmoid = P(PG)
 *
 * w = 8: 29.5 k parameters, 6.0 MFLOPs/image (the shipped default; trains 2.5× faster than
 * w = 16 on this box's wasm backend). w = 16: 117 k parameters, 23.9 MFLOPs/image.
 *
 * Strided convolutions instead of pooling keep every layer a convolution, which the wasm
 * training kernels and the ONNX export (BN folded into Conv) both handle in one way.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

export const ARCHITECTURE_NAME = 'crystalnet-r2';
export const EMBEDDING_LAYER = 'embedding';
export const OUTPUT_LAYER = 'p_pg';
export const INPUT_LAYER = 'input';

export interface ArchitectureOptions {
  inputSize: number;
  seed: number;
  /** Dropout before the classifier; regularises the 65 weights that decide. */
  dropout?: number;
  /** L2 on convolution kernels. */
  l2?: number;
  /**
   * `batch`: BatchNormalization after each convolution. `none`: convolutions with bias and the
   * last convolution of each residual branch initialised to zero (Fixup), so the blocks start
   * as identities. `none` trains ~2× faster on wasm (no BN gradient passes).
   */
  norm?: 'batch' | 'none';
  /** Channels of the first stage (then ×2, ×4). */
  width?: number;
}

export function buildModel(tf: Tf, options: ArchitectureOptions): tfTypes.LayersModel {
  const { inputSize, seed } = options;
  let layerSeed = seed * 1000;
  const init = () => tf.initializers.heNormal({ seed: layerSeed++ });
  const reg = options.l2 ? tf.regularizers.l2({ l2: options.l2 }) : undefined;
  const batchNorm = (options.norm ?? 'batch') === 'batch';
  const conv = (x: tfTypes.SymbolicTensor, filters: number, strides: number, name: string, extra: { activation?: 'relu'; zero?: boolean } = {}) =>
    tf.layers
      .conv2d({
        filters,
        kernelSize: 3,
        strides,
        padding: 'same',
        useBias: !batchNorm,
        activation: extra.activation,
        kernelInitializer: extra.zero ? 'zeros' : init(),
        kernelRegularizer: reg,
        name,
      })
      .apply(x) as tfTypes.SymbolicTensor;
  const bn = (x: tfTypes.SymbolicTensor, name: string) =>
    tf.layers.batchNormalization({ name, momentum: 0.9, epsilon: 1e-3 }).apply(x) as tfTypes.SymbolicTensor;
  const relu = (x: tfTypes.SymbolicTensor, name: string) => tf.layers.reLU({ name }).apply(x) as tfTypes.SymbolicTensor;
  const cbr = (x: tfTypes.SymbolicTensor, filters: number, strides: number, name: string) =>
    batchNorm
      ? relu(bn(conv(x, filters, strides, `${name}_conv`), `${name}_bn`), `${name}_relu`)
      : conv(x, filters, strides, `${name}_conv`, { activation: 'relu' });
  const residual = (x: tfTypes.SymbolicTensor, filters: number, name: string) => {
    const a = cbr(x, filters, 1, `${name}a`);
    const b = batchNorm ? bn(conv(a, filters, 1, `${name}b_conv`), `${name}b_bn`) : conv(a, filters, 1, `${name}b_conv`, { zero: true });
    const sum = tf.layers.add({ name: `${name}_add` }).apply([x, b]) as tfTypes.SymbolicTensor;
    return relu(sum, `${name}_relu`);
  };

  const input = tf.input({ shape: [inputSize, inputSize, 1], name: INPUT_LAYER });
  const w = options.width ?? 16;
  let x = cbr(input, w, 2, 'stem');
  x = cbr(x, 2 * w, 2, 'down1');
  x = residual(x, 2 * w, 'res1');
  x = cbr(x, 4 * w, 2, 'down2');
  x = residual(x, 4 * w, 'res2');
  const embedding = tf.layers.globalAveragePooling2d({ name: EMBEDDING_LAYER }).apply(x) as tfTypes.SymbolicTensor;
  const dropped = tf.layers.dropout({ rate: options.dropout ?? 0.3, seed: seed + 7, name: 'dropout' }).apply(embedding) as tfTypes.SymbolicTensor;
  const output = tf.layers
    .dense({ units: 1, activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: layerSeed++ }), name: OUTPUT_LAYER })
    .apply(dropped) as tfTypes.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: ARCHITECTURE_NAME });
}

/** The same layers with the embedding as a second output, for OOD statistics and reports. */
export function withEmbedding(tf: Tf, model: tfTypes.LayersModel): tfTypes.LayersModel {
  return tf.model({ inputs: model.inputs, outputs: [model.outputs[0]!, model.getLayer(EMBEDDING_LAYER).output as tfTypes.SymbolicTensor] });
}

export interface ModelCost {
  parameters: number;
  /** Multiply-accumulates per image in convolutions and dense layers. */
  macsPerImage: number;
  /** 2 × MACs, the usual convention; BN folds into the convolutions at export. */
  flopsPerImage: number;
}

/** Parameters and FLOPs counted from the layer shapes (BN counted as parameters, not FLOPs). */
export function modelCost(model: tfTypes.LayersModel): ModelCost {
  let macs = 0;
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls === 'Conv2D') {
      const out = layer.outputShape as number[];
      const kernel = layer.getWeights()[0]!.shape as number[]; // [kh, kw, ci, co]
      macs += out[1]! * out[2]! * kernel[0]! * kernel[1]! * kernel[2]! * kernel[3]!;
    } else if (cls === 'Dense') {
      const kernel = layer.getWeights()[0]!.shape as number[];
      macs += kernel[0]! * kernel[1]!;
    }
  }
  return { parameters: model.countParams(), macsPerImage: macs, flopsPerImage: 2 * macs };
}
