/**
 * TF.js layers model → ONNX, encoded with the `onnx-proto` protobuf classes.
 *
 * Opset 17, IR version 8 (what Debian's python3-onnx 1.12 checks and onnxruntime ≥ 1.13 runs).
 *
 * Graph contract (what the classify stage feeds and reads):
 *   input      `input`      float32 [batch, H, W, 1]  NHWC, grey, pixel / 255
 *   output 0   `p_pg`       float32 [batch, 1]        P(PG), sigmoid
 *   output 1   `embedding`  float32 [batch, 4w]       global-average-pooled features (OOD score; w = width)
 * The NHWC input is transposed to NCHW once at the top (a copy of one channel, ~free).
 */
import { writeFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import type * as tfTypes from '@tensorflow/tfjs';
import { EMBEDDING_LAYER } from './architecture.js';

const { onnx } = onnxProto;

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT_PG = 'p_pg';
export const ONNX_OUTPUT_EMBEDDING = 'embedding';

const FLOAT = onnx.TensorProto.DataType.FLOAT;

function floatTensor(name: string, dims: number[], values: Float32Array): onnxProto.onnx.ITensorProto {
  const bytes = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  return { name, dims, dataType: FLOAT, rawData: bytes };
}

const ints = (name: string, values: number[]): onnxProto.onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: values });
const int = (name: string, value: number): onnxProto.onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: value });
const float = (name: string, value: number): onnxProto.onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value });

function valueInfo(name: string, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}

/** TF "same" padding: total = max((out−1)·s + k − in, 0), the odd pixel at the bottom/right. */
function samePads(inSize: number, k: number, s: number): [number, number] {
  const out = Math.ceil(inSize / s);
  const total = Math.max((out - 1) * s + k - inSize, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** The [C, H, W] of the value a convolution reads; anything else is a graph this export does not handle. */
function imageShape(shape: number[] | undefined, layer: string): [number, number, number] {
  if (shape?.length !== 3) throw new Error(`ONNX export: ${layer} needs an image input [C, H, W], got ${JSON.stringify(shape)}`);
  return shape as [number, number, number];
}

/** Transpose a [kh, kw, ci, co] kernel to ONNX's [co, ci, kh, kw]. */
function hwioToOihw(values: Float32Array, [kh, kw, ci, co]: [number, number, number, number]): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          out[((o * ci + i) * kh + y) * kw + x] = values[((y * kw + x) * ci + i) * co + o]!;
        }
  return out;
}

export interface OnnxExportInfo {
  opset: number;
  irVersion: number;
  input: { name: string; shape: (number | string)[]; layout: 'NHWC' };
  outputs: { name: string; shape: (number | string)[] }[];
  nodes: number;
  bytes: number;
}

/** Build the ONNX model bytes for a CrystalNet-style layers model (Conv2D, BN, ReLU, Add, GAP, Dropout, Dense). */
export function layersModelToOnnx(
  model: tfTypes.LayersModel,
  meta: { producerVersion?: string; docString?: string } = {},
): { bytes: Uint8Array; info: OnnxExportInfo } {
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const initializers: onnxProto.onnx.ITensorProto[] = [];
  const outputOf = new Map<string, string>();
  const shapeOf = new Map<string, number[]>(); // NCHW spatial sizes by value name: [C, H, W]
  const inputShape = model.inputs[0]!.shape as (number | null)[];
  const [, H, W, C] = inputShape;
  if (H == null || W == null || C == null) throw new Error(`ONNX export: the model's input must have a fixed size, got ${JSON.stringify(inputShape)}`);

  nodes.push({ opType: 'Transpose', input: [ONNX_INPUT], output: ['input_nchw'], name: 'to_nchw', attribute: [ints('perm', [0, 3, 1, 2])] });
  let embeddingValue: string | undefined;
  let pgValue: string | undefined;

  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const name = layer.name;
    if (cls === 'InputLayer') {
      outputOf.set(name, 'input_nchw');
      shapeOf.set('input_nchw', [C, H, W]);
      continue;
    }
    const inbound = (layer.inboundNodes[0]?.inboundLayers ?? []).map((l) => {
      const v = outputOf.get(l.name);
      if (v === undefined) throw new Error(`ONNX export: layer ${name} reads ${l.name}, which has not been exported yet`);
      return v;
    });
    const x = inbound[0];
    if (x === undefined) throw new Error(`ONNX export: layer ${name} (${cls}) has no input`);
    const weights = layer.getWeights();
    const config = layer.getConfig() as Record<string, unknown>;
    const out = `${name}_out`;
    switch (cls) {
      case 'Conv2D': {
        const kernel = weights[0];
        if (!kernel) throw new Error(`ONNX export: ${name} has no kernel weights`);
        const kshape = kernel.shape as [number, number, number, number]; // Conv2D kernels are [kh, kw, ci, co]
        const [kh, kw, , co] = kshape;
        const strides = config.strides as [number, number];
        const dilation = config.dilationRate as number[] | number;
        if ((Array.isArray(dilation) ? dilation : [dilation, dilation]).some((d) => d !== 1))
          throw new Error(`ONNX export: ${name} uses dilation, not supported`);
        const [c, h, w] = imageShape(shapeOf.get(x), name);
        let pads = [0, 0, 0, 0];
        let outH = Math.floor((h - kh) / strides[0]) + 1;
        let outW = Math.floor((w - kw) / strides[1]) + 1;
        if (config.padding === 'same') {
          const [t, b] = samePads(h, kh, strides[0]);
          const [l, r] = samePads(w, kw, strides[1]);
          pads = [t, l, b, r];
          outH = Math.ceil(h / strides[0]);
          outW = Math.ceil(w / strides[1]);
        }
        const wName = `${name}_W`;
        initializers.push(floatTensor(wName, [co, c, kh, kw], hwioToOihw(kernel.dataSync() as Float32Array, kshape)));
        const inputs = [x, wName];
        if (config.useBias) {
          initializers.push(floatTensor(`${name}_B`, [co], weights[1]!.dataSync() as Float32Array));
          inputs.push(`${name}_B`);
        }
        const activation = config.activation as string;
        const convOut = activation === 'relu' ? `${name}_conv` : out;
        nodes.push({
          opType: 'Conv',
          input: inputs,
          output: [convOut],
          name,
          attribute: [ints('kernel_shape', [kh, kw]), ints('strides', strides), ints('pads', pads), ints('dilations', [1, 1]), int('group', 1)],
        });
        if (activation === 'relu') nodes.push({ opType: 'Relu', input: [convOut], output: [out], name: `${name}_relu` });
        else if (activation !== 'linear') throw new Error(`ONNX export: ${name} has activation ${activation}, only relu/linear are supported`);
        shapeOf.set(out, [co, outH, outW]);
        break;
      }
      case 'BatchNormalization': {
        const [gamma, beta, mean, variance] = weights;
        if (!gamma || !beta || !mean || !variance)
          throw new Error(`ONNX export: ${name} needs scale, offset, mean and variance weights (center and scale on), got ${weights.length} tensors`);
        const channels = gamma.shape[0]!;
        const names = ['scale', 'bias', 'mean', 'var'].map((s) => `${name}_${s}`);
        [gamma, beta, mean, variance].forEach((t, i) => initializers.push(floatTensor(names[i]!, [channels], t.dataSync() as Float32Array)));
        nodes.push({ opType: 'BatchNormalization', input: [x, ...names], output: [out], name, attribute: [float('epsilon', config.epsilon as number)] });
        shapeOf.set(out, shapeOf.get(x)!);
        break;
      }
      case 'ReLU':
      case 'Activation': {
        const act = cls === 'ReLU' ? 'relu' : (config.activation as string);
        if (act !== 'relu') throw new Error(`ONNX export: ${name} activation ${act} not supported`);
        nodes.push({ opType: 'Relu', input: [x], output: [out], name });
        shapeOf.set(out, shapeOf.get(x)!);
        break;
      }
      case 'Add':
        nodes.push({ opType: 'Add', input: inbound, output: [out], name });
        shapeOf.set(out, shapeOf.get(x)!);
        break;
      case 'GlobalAveragePooling2D': {
        const pooled = `${name}_pool`;
        nodes.push({ opType: 'GlobalAveragePool', input: [x], output: [pooled], name });
        const flatName = name === EMBEDDING_LAYER ? ONNX_OUTPUT_EMBEDDING : out;
        nodes.push({ opType: 'Flatten', input: [pooled], output: [flatName], name: `${name}_flatten`, attribute: [int('axis', 1)] });
        shapeOf.set(flatName, [shapeOf.get(x)![0]!]);
        if (name === EMBEDDING_LAYER) embeddingValue = flatName;
        outputOf.set(name, flatName);
        continue;
      }
      case 'Dropout':
        // Identity at inference.
        outputOf.set(name, x);
        continue;
      case 'Dense': {
        const [kernel, bias] = weights;
        if (!kernel) throw new Error(`ONNX export: ${name} has no kernel weights`);
        const [inDim, units] = kernel.shape as [number, number]; // Dense kernels are [in, units]
        initializers.push(floatTensor(`${name}_W`, [inDim, units], kernel.dataSync() as Float32Array));
        const inputs = [x, `${name}_W`];
        if (bias) {
          initializers.push(floatTensor(`${name}_B`, [units], bias.dataSync() as Float32Array));
          inputs.push(`${name}_B`);
        }
        const activation = config.activation as string;
        const isOutput = model.outputs[0]!.sourceLayer.name === name;
        const finalName = isOutput ? ONNX_OUTPUT_PG : out;
        const gemmOut = activation === 'linear' ? finalName : `${name}_logit`;
        nodes.push({ opType: 'Gemm', input: inputs, output: [gemmOut], name });
        if (activation === 'sigmoid') nodes.push({ opType: 'Sigmoid', input: [gemmOut], output: [finalName], name: `${name}_sigmoid` });
        else if (activation === 'relu') nodes.push({ opType: 'Relu', input: [gemmOut], output: [finalName], name: `${name}_relu` });
        else if (activation !== 'linear') throw new Error(`ONNX export: ${name} activation ${activation} not supported`);
        shapeOf.set(finalName, [units]);
        if (isOutput) pgValue = finalName;
        outputOf.set(name, finalName);
        continue;
      }
      default:
        throw new Error(
          `ONNX export: layer ${name} of type ${cls} is not supported (supported: Conv2D, BatchNormalization, ReLU, Add, GlobalAveragePooling2D, Dropout, Dense)`,
        );
    }
    outputOf.set(name, out);
  }
  if (pgValue === undefined) throw new Error('ONNX export: the model has no Dense output layer');
  const outputs = [{ name: ONNX_OUTPUT_PG, shape: ['batch', shapeOf.get(pgValue)![0]] as (number | string)[] }];
  if (embeddingValue) outputs.push({ name: ONNX_OUTPUT_EMBEDDING, shape: ['batch', shapeOf.get(embeddingValue)![0]!] });

  const modelProto = onnx.ModelProto.create({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'crystalwatch',
    producerVersion: meta.producerVersion ?? '0',
    docString: meta.docString ?? '',
    graph: {
      name: model.name,
      node: nodes,
      initializer: initializers,
      input: [valueInfo(ONNX_INPUT, ['batch', H, W, C])],
      output: outputs.map((o) => valueInfo(o.name, o.shape)),
    },
  });
  const bytes = onnx.ModelProto.encode(modelProto).finish();
  return {
    bytes,
    info: {
      opset: ONNX_OPSET,
      irVersion: ONNX_IR_VERSION,
      input: { name: ONNX_INPUT, shape: ['batch', H, W, C], layout: 'NHWC' },
      outputs,
      nodes: nodes.length,
      bytes: bytes.length,
    },
  };
}

export async function exportOnnx(
  model: tfTypes.LayersModel,
  path: string,
  meta: { producerVersion?: string; docString?: string } = {},
): Promise<OnnxExportInfo> {
  const { bytes, info } = layersModelToOnnx(model, meta);
  await writeFile(path, bytes);
  return info;
}
