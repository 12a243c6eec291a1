/**
 * Tiny ONNX models built in code with `onnx-proto`, with the same input/output signature as
 * the real ones (Keras ResNet: NHWC float input, one sigmoid output; PyTorch: NCHW, two-class
 * softmax). Tests use them to prove the preprocessing numerically, and the bench uses them
 * when no shipped model is present. Never a committed binary.
 *
 * Graph: x ─ReduceMean(H,W)→ embedding [N,C] ─MatMul W─Add b→ logits ─Sigmoid|Softmax→ output
 * so P(PG) = sigmoid(Σ_c W[c]·mean_c(x) + b): a closed form a test can compute by hand.
 */
import { createRequire } from 'node:module';
import type { onnx as OnnxNamespace } from 'onnx-proto';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNamespace };

export interface TinyModelSpec {
  layout: 'NHWC' | 'NCHW';
  width: number;
  height: number;
  channels: 1 | 3;
  kind: 'sigmoid' | 'softmax';
  /** MatMul weights, `channels × outputs` row-major (outputs = 1 for sigmoid, 2 for softmax). */
  weights: number[];
  bias: number[];
  inputName?: string;
  outputName?: string;
  /** Also expose the per-channel mean as a second output with this name (for OOD). */
  embeddingName?: string;
  /** Fixed batch dimension (GPU engines); symbolic `N` when absent. */
  batch?: number;
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;

function valueInfo(name: string, dims: (number | string)[]): OnnxNamespace.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Serialise a tiny classifier as ONNX (opset 13) bytes. */
export function buildTinyOnnxModel(spec: TinyModelSpec): Uint8Array {
  const outputs = spec.kind === 'sigmoid' ? 1 : 2;
  if (spec.weights.length !== spec.channels * outputs) {
    throw new Error(`tiny ONNX model: weights must have channels×outputs = ${spec.channels * outputs} values, got ${spec.weights.length}`);
  }
  if (spec.bias.length !== outputs) throw new Error(`tiny ONNX model: bias must have ${outputs} values, got ${spec.bias.length}`);
  const inputName = spec.inputName ?? 'input';
  const outputName = spec.outputName ?? 'output';
  const embedding = spec.embeddingName ?? 'embedding';
  const n = spec.batch ?? 'N';
  const inputDims = spec.layout === 'NHWC' ? [n, spec.height, spec.width, spec.channels] : [n, spec.channels, spec.height, spec.width];
  const spatialAxes = spec.layout === 'NHWC' ? [1, 2] : [2, 3];
  const graph: OnnxNamespace.IGraphProto = {
    name: 'tiny',
    node: [
      {
        opType: 'ReduceMean',
        input: [inputName],
        output: [embedding],
        attribute: [
          { name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: spatialAxes },
          { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 },
        ],
      },
      { opType: 'MatMul', input: [embedding, 'W'], output: ['projected'] },
      { opType: 'Add', input: ['projected', 'b'], output: ['logits'] },
      spec.kind === 'sigmoid'
        ? { opType: 'Sigmoid', input: ['logits'], output: [outputName] }
        : { opType: 'Softmax', input: ['logits'], output: [outputName], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
    ],
    initializer: [
      { name: 'W', dataType: FLOAT, dims: [spec.channels, outputs], floatData: spec.weights },
      { name: 'b', dataType: FLOAT, dims: [outputs], floatData: spec.bias },
    ],
    input: [valueInfo(inputName, inputDims)],
    output: [valueInfo(outputName, [n, outputs]), ...(spec.embeddingName ? [valueInfo(embedding, [n, spec.channels])] : [])],
  };
  const model: OnnxNamespace.IModelProto = {
    irVersion: 7,
    producerName: 'crystalwatch-tiny',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
