/**
 * onnxruntime-node. Execution providers are tried best first — TensorRT, CUDA, then CPU — and
 * the first that creates a session wins. The GPU providers are not bundled with the npm
 * package (`listSupportedBackends()` says `bundled: false`): a plant installs them (see
 * src/classify/README.md), and where they are absent the session creation fails and the CPU
 * provider takes over. `run()` blocks its thread, so this module runs inside the classify worker.
 */
import { availableParallelism } from 'node:os';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { modelFile } from '../../model/card.js';
import { type BackendInit, type BackendOutput, type FeatureMap, type FeatureMapSupport, type InferenceBackend, pPGFromOutput } from './types.js';
import { tensorShape } from '../preprocess.js';
import { deriveTrunk } from '../feature-map.js';

type Provider = 'tensorrt' | 'cuda' | 'cpu';

const require = createRequire(import.meta.url);

/**
 * GPU providers worth trying: listed by this onnxruntime build and with their shared library
 * installed next to the binding (trying one that is absent costs nothing but prints an error).
 */
function gpuProviders(log: (msg: string) => void): Provider[] {
  if (process.env.CRYSTALWATCH_ORT_GPU === '0') return [];
  const listed = new Set(ort.listSupportedBackends().map((b) => b.name));
  let binDir: string | undefined;
  try {
    binDir = join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    binDir = undefined;
  }
  const order: Provider[] = [];
  for (const p of ['tensorrt', 'cuda'] as const) {
    if (!listed.has(p)) continue;
    if (binDir && !existsSync(join(binDir, `libonnxruntime_providers_${p}.so`)) && process.platform === 'linux') {
      log(`onnxruntime: ${p} execution provider not installed (no libonnxruntime_providers_${p}.so in ${binDir})`);
      continue;
    }
    order.push(p);
  }
  return order;
}

export async function createOnnxBackend(init: BackendInit, log: (msg: string) => void = () => {}): Promise<InferenceBackend> {
  const { card } = init;
  const path = modelFile(card, init.modelDir, 'onnx');
  if (!path) throw new Error(`model ${card.name}: the card names no ONNX file (format "${card.format}", no files.onnx); use --backend tfjs`);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`model ${card.name}: cannot read ONNX file ${path} (${(err as Error).message})`);
  }
  const threads = init.threads ?? Number(process.env.CRYSTALWATCH_ORT_THREADS ?? availableParallelism());
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // Idle intra-op threads spin by default; here they would spin on the cores sharp decodes
    // on. CRYSTALWATCH_ORT_SPIN=1 turns it back on for a machine with cores to spare.
    extra: { session: { intra_op: { allow_spinning: process.env.CRYSTALWATCH_ORT_SPIN === '1' ? '1' : '0' } } },
  };
  let session: ort.InferenceSession | undefined;
  let provider: Provider = 'cpu';
  for (const candidate of gpuProviders(log)) {
    try {
      session = await ort.InferenceSession.create(bytes, { ...base, executionProviders: [candidate, 'cpu'] });
      provider = candidate;
      break;
    } catch (err) {
      log(`onnxruntime: ${candidate} execution provider unavailable (${(err as Error).message.split('\n')[0]}); trying the next`);
    }
  }
  if (!session) session = await ort.InferenceSession.create(bytes, { ...base, executionProviders: ['cpu'] });
  const inputName = card.input.name ?? session.inputNames[0];
  const outputName = card.output.name ?? session.outputNames[0];
  if (inputName === undefined || !session.inputNames.includes(inputName))
    throw new Error(`model ${card.name}: input.name "${inputName}" is not an input of ${path}; it has ${JSON.stringify(session.inputNames)}`);
  if (outputName === undefined || !session.outputNames.includes(outputName))
    throw new Error(`model ${card.name}: output.name "${outputName}" is not an output of ${path}; it has ${JSON.stringify(session.outputNames)}`);
  const embeddingName = card.output.embeddingName;
  if (embeddingName && !session.outputNames.includes(embeddingName)) {
    throw new Error(`model ${card.name}: output.embeddingName "${embeddingName}" is not an output of ${path}; it has ${JSON.stringify(session.outputNames)}`);
  }
  const fetches = embeddingName ? [outputName, embeddingName] : [outputName];
  const s = session;
  const trunk = init.featureMap ? await openTrunk(bytes, init, base, provider, outputName) : undefined;
  // No log when the trunk is not available: the classifier says it once, with what it does instead.
  let closed = false;
  return {
    name: 'onnx',
    device: provider,
    featureMap: trunk?.support,
    async runFeatureMap(tensor: Float32Array, n: number, width: number, height: number): Promise<FeatureMap> {
      if (!trunk?.session)
        throw new Error(
          `model ${card.name}: feature-map inference is not available (${trunk?.support.supported === false ? trunk.support.reason : 'not asked for at load'})`,
        );
      const feeds = { [inputName]: new ort.Tensor('float32', tensor, tensorShape({ ...card.input, width, height }, n)) };
      const out = (await trunk.session.run(feeds, [trunk.featureName]))[trunk.featureName]!;
      const dims = out.dims.map(Number);
      if (dims.length !== 4)
        throw new Error(`model ${card.name}: the trunk output "${trunk.featureName}" has dims ${JSON.stringify(dims)}; [n, C, h, w] expected`);
      const data = out.data as Float32Array;
      // Sent back across the worker boundary by transfer: a view of a larger buffer is copied first.
      const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : Float32Array.from(data);
      return { data: own, dims: dims as FeatureMap['dims'] };
    },
    // GPU engines build kernels per shape: one fixed batch size avoids rebuilding them.
    fixedBatch: provider === 'cpu' ? undefined : init.maxBatchSize,
    async run(tensor: Float32Array, n: number): Promise<BackendOutput> {
      const feeds = { [inputName]: new ort.Tensor('float32', tensor, tensorShape(card.input, n)) };
      const result = await s.run(feeds, fetches);
      const pPG = pPGFromOutput(card, result[outputName]!.data as Float32Array, n);
      if (!embeddingName) return { pPG };
      const embedding = Float32Array.from(result[embeddingName]!.data as Float32Array);
      return { pPG, embedding, embeddingDim: embedding.length / n };
    },
    async close() {
      if (closed) return;
      closed = true;
      await trunk?.session?.release();
      await s.release();
    },
  };
}

/**
 * A second session on the model's trunk (feature-map.ts), on the provider the model got.
 * TensorRT builds an engine per input shape, and frames have their own: the trunk goes to CUDA there.
 */
async function openTrunk(
  bytes: Uint8Array,
  init: BackendInit,
  base: ort.InferenceSession.SessionOptions,
  provider: Provider,
  /** The output the whole model is read from (the card's, else the session's first). */
  outputName: string,
): Promise<{ support: FeatureMapSupport; session?: ort.InferenceSession; featureName: string }> {
  const { card } = init;
  const derived = deriveTrunk(bytes, { layout: card.input.layout, outputName, embeddingName: card.output.embeddingName });
  if ('reason' in derived) return { support: { supported: false, reason: derived.reason }, featureName: '' };
  try {
    const executionProviders = provider === 'cpu' ? ['cpu'] : ['cuda', 'cpu'];
    const session = await ort.InferenceSession.create(derived.trunk, { ...base, executionProviders });
    return { support: { supported: true, head: derived.head }, session, featureName: derived.featureName };
  } catch (err) {
    return { support: { supported: false, reason: `the trunk does not load (${(err as Error).message.split('\n')[0]})` }, featureName: '' };
  }
}
