/**
 * TF.js, with the best engine that loads on this machine, each by dynamic import so an absent
 * optional package never breaks anything: tfjs-node-gpu (CUDA), WebGPU through the `webgpu`
 * package (Dawn), tfjs-node (libtensorflow CPU), the WASM backend (SIMD), plain JS CPU.
 * `CRYSTALWATCH_TFJS_ENGINE` (one of those names) forces one, for comparisons.
 *
 * Models load from disk without tfjs-node's `file://` handler: model.json and its weight
 * shards are read here and handed over as in-memory artifacts, for both layers and graph models.
 */
import { readFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { modelFile } from '../../model/card.js';
import { type BackendInit, type BackendOutput, type InferenceBackend, pPGFromOutput } from './types.js';
import { tensorShape } from '../preprocess.js';

type Tf = typeof import('@tensorflow/tfjs');
type Engine = 'tfjs-node-gpu' | 'webgpu' | 'tfjs-node' | 'wasm' | 'cpu';
const ENGINES: Engine[] = ['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu'];

const require = createRequire(import.meta.url);

function nativeBindingPresent(pkg: string): boolean {
  let dir: string;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return false;
  }
  const lib = join(dir, 'lib');
  if (!existsSync(lib)) return false;
  return readdirSync(lib).some((d) => d.startsWith('napi-v') && existsSync(join(lib, d, 'tfjs_binding.node')));
}

async function tryEngine(engine: Engine, log: (m: string) => void): Promise<Tf | undefined> {
  // A variable specifier keeps TypeScript from requiring the optional packages' types.
  const load = (name: string): Promise<unknown> => import(name);
  try {
    switch (engine) {
      case 'tfjs-node-gpu':
      case 'tfjs-node': {
        // A half-installed package (no native binding: optional install skipped or failed)
        // registers its kernels and then throws on import; look for the binding first.
        if (!nativeBindingPresent(`@tensorflow/${engine}`)) {
          log(`tfjs: ${engine} not installed (no native tfjs_binding.node)`);
          return undefined;
        }
        const tf = (await load(`@tensorflow/${engine}`)) as Tf;
        return (await tf.setBackend('tensorflow')) ? tf : undefined;
      }
      case 'webgpu': {
        const webgpu = (await load('webgpu')) as { create: (o: string[]) => { requestAdapter(): Promise<unknown> }; globals: object };
        const gpu = webgpu.create([]);
        if (!(await gpu.requestAdapter())) return undefined;
        Object.assign(globalThis, webgpu.globals);
        const g = globalThis as { navigator?: { gpu?: unknown } };
        if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
        (g.navigator as { gpu?: unknown }).gpu = gpu;
        const tf = (await import('@tensorflow/tfjs')) as Tf;
        await load('@tensorflow/tfjs-backend-webgpu');
        return (await tf.setBackend('webgpu')) ? tf : undefined;
      }
      case 'wasm': {
        const tf = (await import('@tensorflow/tfjs')) as Tf;
        const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as { setWasmPaths(p: string): void };
        wasm.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
        return (await tf.setBackend('wasm')) ? tf : undefined;
      }
      case 'cpu': {
        const tf = (await import('@tensorflow/tfjs')) as Tf;
        return (await tf.setBackend('cpu')) ? tf : undefined;
      }
    }
  } catch (err) {
    log(`tfjs: ${engine} unavailable (${(err as Error).message.split('\n')[0]}); trying the next`);
    return undefined;
  }
}

interface ModelJson {
  format?: string;
  modelTopology: unknown;
  weightsManifest: { paths: string[]; weights: unknown[] }[];
  signature?: unknown;
  userDefinedMetadata?: unknown;
  modelInitializer?: unknown;
}

async function readArtifacts(path: string): Promise<{ artifacts: import('@tensorflow/tfjs').io.ModelArtifacts; graph: boolean }> {
  let json: ModelJson;
  try {
    json = JSON.parse(await readFile(path, 'utf8')) as ModelJson;
  } catch (err) {
    throw new Error(`cannot read TF.js model ${path} (${(err as Error).message})`);
  }
  const shards: Buffer[] = [];
  const weightSpecs: unknown[] = [];
  for (const group of json.weightsManifest ?? []) {
    for (const shard of group.paths) shards.push(await readFile(join(dirname(path), shard)));
    weightSpecs.push(...group.weights);
  }
  const weights = Buffer.concat(shards);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  const graph =
    json.format === 'graph-model' ||
    (json.format === undefined &&
      !(json.modelTopology as { class_name?: string })?.class_name &&
      !(json.modelTopology as { model_config?: unknown })?.model_config);
  return {
    artifacts: {
      format: json.format,
      modelTopology: json.modelTopology as object,
      weightSpecs: weightSpecs as import('@tensorflow/tfjs').io.WeightsManifestEntry[],
      weightData,
      signature: json.signature as object | undefined,
      userDefinedMetadata: json.userDefinedMetadata as Record<string, object> | undefined,
      modelInitializer: json.modelInitializer as object | undefined,
    },
    graph,
  };
}

export async function createTfjsBackend(init: BackendInit, log: (msg: string) => void = () => {}): Promise<InferenceBackend> {
  const { card } = init;
  const path = modelFile(card, init.modelDir, 'tfjs');
  if (!path) throw new Error(`model ${card.name}: the card names no TF.js model (format "${card.format}", no files.tfjs); use --backend onnx`);
  const forced = process.env.CRYSTALWATCH_TFJS_ENGINE as Engine | undefined;
  if (forced && !ENGINES.includes(forced)) throw new Error(`CRYSTALWATCH_TFJS_ENGINE must be one of ${ENGINES.join(', ')}, got "${forced}"`);
  let tf: Tf | undefined;
  let engine: Engine = 'cpu';
  for (const candidate of forced ? [forced] : ENGINES) {
    tf = await tryEngine(candidate, log);
    if (tf) {
      engine = candidate;
      break;
    }
  }
  if (!tf) throw new Error(`tfjs: no engine could start (tried ${forced ?? ENGINES.join(', ')})`);
  const { artifacts, graph } = await readArtifacts(path);
  const t = tf;
  const embeddingName = card.output.embeddingName;
  let predict: (x: import('@tensorflow/tfjs').Tensor) => import('@tensorflow/tfjs').Tensor[];
  let dispose: () => void;
  if (graph) {
    const model = await t.loadGraphModel(t.io.fromMemory(artifacts));
    const outputName = card.output.name ?? model.outputNodes[0];
    const inputName = card.input.name ?? model.inputNodes[0];
    if (outputName === undefined || inputName === undefined)
      throw new Error(
        `model ${card.name}: ${path} has no ${inputName === undefined ? 'input' : 'output'} node to use; name one in the card (input.name, output.name)`,
      );
    const outputs = embeddingName ? [outputName, embeddingName] : [outputName];
    predict = (x) => {
      const r = model.execute({ [inputName]: x }, outputs);
      return Array.isArray(r) ? r : [r];
    };
    dispose = () => model.dispose();
  } else {
    const layers = await t.loadLayersModel(t.io.fromMemory(artifacts));
    const model = embeddingName
      ? t.model({ inputs: layers.inputs, outputs: [layers.outputs[0]!, layers.getLayer(embeddingName).output as import('@tensorflow/tfjs').SymbolicTensor] })
      : layers;
    predict = (x) => {
      const r = model.predict(x);
      return Array.isArray(r) ? r : [r];
    };
    dispose = () => layers.dispose();
  }
  const device = engine === 'tfjs-node-gpu' ? 'cuda' : engine === 'tfjs-node' ? 'cpu-libtensorflow' : engine;
  let closed = false;
  return {
    name: 'tfjs',
    device,
    fixedBatch: engine === 'tfjs-node-gpu' || engine === 'webgpu' ? init.maxBatchSize : undefined,
    // A TF.js model is run whole (layers or graph model, fixed input): the classifier tiles.
    ...(init.featureMap ? { featureMap: { supported: false, reason: 'the tfjs backend runs whole models only' } as const } : {}),
    async run(tensor: Float32Array, n: number): Promise<BackendOutput> {
      const x = t.tensor(tensor, tensorShape(card.input, n), 'float32');
      try {
        const outs = predict(x);
        try {
          const pPG = pPGFromOutput(card, await outs[0]!.data(), n);
          if (!embeddingName) return { pPG };
          const embedding = Float32Array.from(await outs[1]!.data());
          return { pPG, embedding, embeddingDim: embedding.length / n };
        } finally {
          for (const o of outs) o.dispose();
        }
      } finally {
        x.dispose();
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      dispose();
    },
  };
}
