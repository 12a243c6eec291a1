/**
 * Feature-map inference, the graph half: split a classifier ONNX model into its convolutional
 * trunk and its linear head, so a tiled frame goes through the trunk once (resized as a whole)
 * and each tile's embedding is the mean of the feature-map window it covers.
 *
 * The pattern (Keras/PyTorch ResNet-style exports, and the shipped default model):
 *
 *   X [N,C,h,w] ─GlobalAveragePool→ [N,C,1,1] ─Flatten(axis 1)→ embedding [N,C] ─Gemm→ logits ─[Sigmoid|Softmax]→ output
 *
 * The trunk is the sub-graph that computes X, with the input's batch and spatial dimensions made symbolic
 * (value_info shapes dropped: they were inferred for the fixed input size). The head is the
 * Gemm's weights and bias read from the initializers, applied in JavaScript (feature-pool.ts).
 * Any other shape of graph gives `{ reason }`, and the classifier keeps per-tile inference.
 */
import { createRequire } from 'node:module';
import type { onnx as OnnxNamespace } from 'onnx-proto';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNamespace };

// Decoded messages always carry their repeated fields (empty arrays when absent): the classes say so.
type Node = OnnxNamespace.NodeProto;
type Tensor = OnnxNamespace.ITensorProto;

/** `logits = W·embedding + b`, then the activation the graph applies, if any. */
export interface LinearHead {
  /** Embedding values in (C). */
  inputs: number;
  /** Values out (1 for a sigmoid, the class count for a softmax). */
  outputs: number;
  /** Row-major `outputs × inputs`: row o holds the weights of output o. */
  weights: Float32Array;
  /** `outputs` values. */
  bias: Float32Array;
  activation: 'sigmoid' | 'softmax' | 'none';
}

export interface TrunkModel {
  /** ONNX bytes of the trunk: same input name, spatial dimensions symbolic, one output. */
  trunk: Uint8Array;
  /** Name of the trunk's output (X above), a [N,C,h,w] feature map. */
  featureName: string;
  head: LinearHead;
}

export interface TrunkOptions {
  /** The card's input layout: which input dimensions are height and width. */
  layout: 'NHWC' | 'NCHW';
  /** The card's output name; the head must end in it. Default: the graph's first output. */
  outputName?: string;
  /** The card's embedding output; it must be the pooled (Flatten or GlobalAveragePool) value. */
  embeddingName?: string;
}

/** The trunk and head of `modelBytes`, or why this model has none. */
export function deriveTrunk(modelBytes: Uint8Array, options: TrunkOptions): TrunkModel | { reason: string } {
  let model: OnnxNamespace.ModelProto;
  try {
    model = onnx.ModelProto.decode(modelBytes);
  } catch (err) {
    return { reason: `cannot parse the ONNX model (${(err as Error).message})` };
  }
  if (!model.graph) return { reason: 'the ONNX model has no graph' };
  const graph = model.graph as OnnxNamespace.GraphProto;
  const nodes = graph.node as Node[];
  if (nodes.some((n) => n.attribute.some((a) => a.g || (a.graphs?.length ?? 0) > 0))) {
    return { reason: 'the graph has sub-graphs (If/Loop/Scan); only flat graphs are split' };
  }
  const outputName = options.outputName ?? graph.output[0]?.name ?? '';
  const consumers = (name: string) => nodes.filter((n) => n.input.includes(name));
  const producer = (name: string) => nodes.find((n) => n.output.includes(name));
  const isGraphOutput = (name: string) => graph.output.some((o) => o.name === name);

  // Walk back from the output: [activation] ← Gemm ← Flatten ← GlobalAveragePool ← X.
  let last = producer(outputName);
  if (!last) return { reason: `no node produces the output "${outputName}"` };
  let activation: LinearHead['activation'] = 'none';
  let activationNode: Node | undefined;
  if (last.opType === 'Sigmoid' || last.opType === 'Softmax') {
    if (last.opType === 'Softmax' && ![1, -1].includes(intAttr(last, 'axis', -1))) return { reason: 'the Softmax is not over the class axis (1)' };
    activation = last.opType === 'Sigmoid' ? 'sigmoid' : 'softmax';
    activationNode = last;
    last = producer(last.input[0]!);
  }
  if (!last || last.opType !== 'Gemm') return { reason: `the output "${outputName}" is not a Gemm (+ Sigmoid/Softmax) of a pooled feature map` };
  const gemm = last;
  const flatten = producer(gemm.input[0]!);
  if (!flatten || flatten.opType !== 'Flatten' || intAttr(flatten, 'axis', 1) !== 1) return { reason: 'the Gemm does not read a Flatten(axis 1)' };
  const pool = producer(flatten.input[0]!);
  if (!pool || pool.opType !== 'GlobalAveragePool') return { reason: 'the Flatten does not read a GlobalAveragePool' };
  const featureName = pool.input[0]!;
  const pooled = pool.output[0]!;
  const embedding = flatten.output[0]!;
  // The head must be a chain: each of its values read by the next step only (graph outputs aside).
  const expected: [string, Node | undefined][] = [
    [pooled, flatten],
    [embedding, gemm],
    [gemm.output[0]!, activationNode],
  ];
  for (const [value, next] of expected) {
    const other = consumers(value).find((n) => n !== next);
    if (other) return { reason: `"${value}" is also read by ${other.opType} "${other.name}"; the head is not a plain chain` };
  }
  if (options.embeddingName && options.embeddingName !== embedding && options.embeddingName !== pooled) {
    return { reason: `the card's embedding "${options.embeddingName}" is not the pooled feature map ("${embedding}")` };
  }
  if (!isGraphOutput(outputName)) return { reason: `"${outputName}" is not a graph output` };

  const head = linearHead(gemm, activation, graph.initializer);
  if ('reason' in head) return head;

  const inputs = graph.input.filter((i) => !graph.initializer.some((t) => t.name === i.name));
  if (inputs.length !== 1) return { reason: `the graph has ${inputs.length} non-constant inputs; one image input expected` };
  const input = inputs[0]!;
  const dims = input.type?.tensorType?.shape?.dim ?? [];
  if (dims.length !== 4) return { reason: `the input "${input.name}" has rank ${dims.length}; a 4-d image batch expected` };

  // The trunk: the nodes X depends on, in the graph's (topological) order.
  const needed = new Set<string>([featureName]);
  const kept: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!node.output.some((o) => needed.has(o))) continue;
    kept.unshift(node);
    for (const name of node.input) if (name) needed.add(name);
  }
  const spatial = options.layout === 'NHWC' ? [1, 2] : [2, 3];
  const trunkInput: OnnxNamespace.IValueInfoProto = {
    name: input.name,
    type: {
      tensorType: {
        elemType: input.type!.tensorType!.elemType,
        // Batch symbolic too: a GPU export with a fixed batch still takes a few frames per run.
        shape: {
          dim: dims.map((d, k) => (k === 0 ? { dimParam: 'batch' } : k === spatial[0] ? { dimParam: 'height' } : k === spatial[1] ? { dimParam: 'width' } : d)),
        },
      },
    },
  };
  const trunkGraph: OnnxNamespace.IGraphProto = {
    name: `${graph.name ?? 'model'}-trunk`,
    node: kept,
    initializer: graph.initializer.filter((t) => needed.has(t.name!)),
    sparseInitializer: graph.sparseInitializer.filter((t) => needed.has(t.values?.name ?? '')),
    input: [trunkInput, ...graph.input.filter((i) => i !== input && needed.has(i.name!))],
    output: [
      {
        name: featureName,
        type: {
          tensorType: {
            elemType: onnx.TensorProto.DataType.FLOAT,
            shape: { dim: [{ dimParam: 'batch' }, { dimParam: 'channels' }, { dimParam: 'cells_h' }, { dimParam: 'cells_w' }] },
          },
        },
      },
    ],
    // Shapes inferred for the fixed input size would contradict a frame: onnxruntime infers its own.
    valueInfo: [],
  };
  // `model` was decoded for this call: replacing its graph keeps the opsets, IR version and metadata.
  model.graph = onnx.GraphProto.create(trunkGraph);
  return { trunk: onnx.ModelProto.encode(model).finish(), featureName, head };
}

function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i ?? fallback) : fallback;
}

function floatAttr(node: Node, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a?.f ?? fallback;
}

/** A float initializer's values and dims (floatData or little-endian rawData). */
function floats(t: Tensor): { values: Float32Array; dims: number[] } | undefined {
  if (t.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
  const dims = (t.dims ?? []).map(Number);
  if (t.floatData && t.floatData.length > 0) return { values: Float32Array.from(t.floatData), dims };
  if (!t.rawData || t.rawData.length % 4 !== 0) return undefined;
  const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
  const values = new Float32Array(t.rawData.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);
  return { values, dims };
}

/** Gemm `alpha·A·op(B) + beta·C` with A = [N,K] and constant B, C, as `W` [M×K] and `b` [M]. */
function linearHead(gemm: Node, activation: LinearHead['activation'], initializers: Tensor[]): LinearHead | { reason: string } {
  if (intAttr(gemm, 'transA', 0) !== 0) return { reason: 'the Gemm transposes its input (transA = 1)' };
  const find = (name: string | undefined) => (name ? initializers.find((t) => t.name === name) : undefined);
  const bTensor = find(gemm.input[1]);
  const B = bTensor && floats(bTensor);
  if (!B || B.dims.length !== 2) return { reason: `the Gemm's weights "${gemm.input[1]}" are not a 2-d float initializer` };
  const transB = intAttr(gemm, 'transB', 0) === 1;
  const [K, M] = transB ? [B.dims[1]!, B.dims[0]!] : [B.dims[0]!, B.dims[1]!];
  const alpha = floatAttr(gemm, 'alpha', 1);
  const beta = floatAttr(gemm, 'beta', 1);
  const weights = new Float32Array(M * K);
  for (let o = 0; o < M; o++) {
    for (let k = 0; k < K; k++) weights[o * K + k] = alpha * B.values[transB ? o * K + k : k * M + o]!;
  }
  const bias = new Float32Array(M);
  if (gemm.input[2]) {
    const cTensor = find(gemm.input[2]);
    const C = cTensor && floats(cTensor);
    // C broadcasts to [N,M]: a scalar, [M] or [1,M]; a per-row bias would not be a head.
    if (!C || (C.values.length !== M && C.values.length !== 1))
      return { reason: `the Gemm's bias "${gemm.input[2]}" is not a float initializer of 1 or ${M} values` };
    for (let o = 0; o < M; o++) bias[o] = beta * C.values[C.values.length === 1 ? 0 : o]!;
  }
  return { inputs: K, outputs: M, weights, bias, activation };
}
