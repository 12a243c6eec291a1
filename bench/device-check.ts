/**
 * The GPU device check (issue #15): on a machine lent for a few minutes, find which GPU paths
 * load, run the classify bench on each of them and on onnxruntime's CPU provider, and print one
 * JSON document. Run on the device by scripts/device-check.sh from the bundle that
 * scripts/device-pack.sh builds (node, a pruned node_modules, dist/, models/default and images
 * rendered beforehand, so the device needs neither @napi-rs/canvas nor the simulator).
 *
 *   node dist/bench/device-check.js [--images DIR] [--model DIR] [--out FILE] [--budget-s 400] [--seconds 3]
 *   node dist/bench/device-check.js --render-images DIR [--crops 64] [--frames 4]
 *
 * Every measuring step runs in a child process with its own deadline, so a GPU driver that hangs
 * or crashes costs that step only; the document is rewritten to --out after every step.
 * Figures: `classify.<backend>.<device>.crops.batch_<n>.*` and
 * `classify.<backend>.<device>.frames_1280x960.<setting>.*`, as bench/classify.ts names them.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Classifier, type ClassifierOptions } from '../src/classify/classifier.js';
import { tensorShape } from '../src/classify/preprocess.js';
import { loadModelCard, modelFile } from '../src/model/card.js';
import { measure, percentile } from './classify-measure.js';
import { detectNvidia, detectOrtNode, detectOrtPython, detectVulkan } from './device-detect.js';

type Figures = Record<string, number | string>;
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const log = (m: string) => process.stderr.write(`device-check: ${m}\n`);

/** Targets from issue #15, on one H200. */
export const TARGETS = { cropsPerS: 20_000, framesPerS: 500 };
export const CROP_BATCHES = [64, 256, 1024];
/** Tiled 1280×960 frames: frames per classify call and tiles per inference call. */
export const FRAME_SETTINGS = [
  { framesPerCall: 1, tileBatch: 64 },
  { framesPerCall: 1, tileBatch: 256 },
  { framesPerCall: 8, tileBatch: 1024 },
];
export function frameSettingName(s: { framesPerCall: number; tileBatch: number }): string {
  return s.framesPerCall === 1 ? `tile_batch_${s.tileBatch}` : `frames_${s.framesPerCall}_per_call.tile_batch_${s.tileBatch}`;
}

/** Calls to time so one measurement lasts about `seconds`, from one timed call; at least 2, at most `max`. */
export function callsFor(seconds: number, callSeconds: number, max: number): number {
  return Math.max(2, Math.min(max, Math.ceil(seconds / Math.max(callSeconds, 1e-4))));
}

/** The best figure among `figures` whose name matches, skipping CPU devices when `gpuOnly`. */
export function bestFigure(figures: Figures, pattern: RegExp, gpuOnly: boolean): { figure: string; value: number } | undefined {
  let best: { figure: string; value: number } | undefined;
  for (const [figure, value] of Object.entries(figures)) {
    const m = pattern.exec(figure);
    if (!m || typeof value !== 'number') continue;
    if (gpuOnly && /^classify\.[^.]+\.(cpu|wasm|cpu-libtensorflow)\./.test(figure)) continue;
    if (!best || value > best.value) best = { figure, value };
  }
  return best;
}

// ---------------------------------------------------------------- steps (each in a child process)

type Engine = 'onnx-cpu' | 'onnx-gpu' | 'tfjs-webgpu';

/** The figures so far, one stdout line each time, so a step killed at its deadline keeps what it measured. */
const partial = (figures: Figures) => process.stdout.write(JSON.stringify({ partial: figures }) + '\n');

async function readImages(dir: string): Promise<Buffer[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.png')).sort();
  if (names.length === 0) throw new Error(`device-check: no .png images in ${dir}; run scripts/device-pack.sh (or --render-images ${dir})`);
  return Promise.all(names.map((n) => readFile(join(dir, n))));
}

/** The classify bench on one engine: crops at CROP_BATCHES, tiled frames at FRAME_SETTINGS. */
async function benchEngine(engine: Engine, opts: { modelDir: string; images: string; seconds: number; worker: boolean }): Promise<object> {
  const crops = await readImages(join(opts.images, 'crops'));
  const frames = await readImages(join(opts.images, 'frames'));
  const backend = engine === 'tfjs-webgpu' ? 'tfjs' : 'onnx';
  const figures: Figures = {};
  const logs = new Set<string>();
  let device = '?';
  let pPG: (number | null)[] = [];
  const load = (o: ClassifierOptions) => Classifier.load(opts.modelDir, { backend, worker: opts.worker, log: (m) => logs.add(m), ...o });
  const timed = async (classifier: Classifier, images: Buffer[], batch: number, maxCalls: number) => {
    const call = Array.from({ length: batch }, (_, i) => images[i % images.length]!);
    await classifier.classify(call); // first run: allocation, kernel or shader compilation
    const t0 = performance.now();
    await classifier.classify(call);
    return batch * callsFor(opts.seconds, (performance.now() - t0) / 1000, maxCalls);
  };
  for (const batch of CROP_BATCHES) {
    const engineSeconds: number[] = [];
    const classifier = await load({ maxBatchSize: batch, onInference: (s) => engineSeconds.push(s) });
    try {
      device = classifier.info.device;
      const key = `classify.${backend}.${device}.crops.batch_${batch}`;
      if (batch === CROP_BATCHES[0]) pPG = (await classifier.classify(crops.slice(0, 16))).map((r) => r.pPG);
      const total = await timed(classifier, crops, batch, 400);
      engineSeconds.length = 0;
      const m = await measure(classifier, crops, batch, total);
      figures[`${key}.frames_per_s`] = Math.round(m.fps);
      figures[`${key}.latency_p50_ms`] = r3(m.p50);
      figures[`${key}.latency_p99_ms`] = r3(m.p99);
      figures[`${key}.cpu_ms_per_frame`] = r3(m.cpuMs);
      figures[`${key}.engine_p50_ms`] = r3(
        percentile(
          [...engineSeconds].sort((a, b) => a - b),
          50,
        ) * 1000,
      );
      log(`${key}: ${Math.round(m.fps)} crops/s (${total} crops)`);
      partial(figures);
    } finally {
      await classifier.close();
    }
  }
  for (const setting of FRAME_SETTINGS) {
    const classifier = await load({ maxBatchSize: setting.tileBatch });
    try {
      const key = `classify.${backend}.${classifier.info.device}.frames_1280x960`;
      figures[`${key}.frame_inference`] = classifier.info.frameInference;
      const name = `${key}.${frameSettingName(setting)}`;
      const total = await timed(classifier, frames, setting.framesPerCall, 200);
      const m = await measure(classifier, frames, setting.framesPerCall, total);
      figures[`${name}.frames_per_s`] = r3(m.fps);
      figures[`${name}.latency_p50_ms`] = r3(m.p50);
      figures[`${name}.cpu_ms_per_frame`] = r3(m.cpuMs);
      log(`${name}: ${r3(m.fps)} frames/s (${total} frames)`);
      partial(figures);
    } finally {
      await classifier.close();
    }
  }
  return { backend, device, figures, pPG, logs: [...logs] };
}

/** The `webgpu` package (Dawn): an adapter, its description, and whether the tfjs backend starts on it. */
async function probeWebgpu(opts: { modelDir: string; images: string }): Promise<object> {
  type Adapter = { info?: Record<string, unknown>; features: Iterable<string>; limits: Record<string, number>; isFallbackAdapter?: boolean };
  let webgpu: { create: (flags: string[]) => { requestAdapter(o?: object): Promise<Adapter | null> } };
  try {
    webgpu = (await import('webgpu' as string)) as typeof webgpu;
  } catch (err) {
    return { status: 'absent', reason: `the webgpu package does not load: ${(err as Error).message.split('\n')[0]}` };
  }
  const adapter = await webgpu.create([]).requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return { status: 'absent', reason: 'requestAdapter() gave no adapter: Dawn found no Vulkan device (see detect.vulkan: loader and ICD)' };
  const info = adapter.info ?? {};
  const description = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: adapter.isFallbackAdapter ?? info.isFallbackAdapter,
    features: [...adapter.features].sort(),
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
  };
  // Through the product path, on the inference worker first (as the classify stage runs it).
  const attempts: object[] = [];
  for (const worker of [true, false]) {
    const logs: string[] = [];
    try {
      const classifier = await Classifier.load(opts.modelDir, { backend: 'tfjs', maxBatchSize: 16, worker, log: (m) => logs.push(m) });
      try {
        const crops = (await readImages(join(opts.images, 'crops'))).slice(0, 2);
        const pPG = (await classifier.classify(crops)).map((r) => r.pPG);
        attempts.push({ worker, device: classifier.info.device, pPG, logs });
        if (classifier.info.device === 'webgpu') return { status: 'loaded', adapter: description, worker, attempts };
      } finally {
        await classifier.close();
      }
    } catch (err) {
      attempts.push({ worker, error: (err as Error).message.split('\n')[0], logs });
    }
  }
  return { status: 'failed', reason: 'an adapter was found but the tfjs webgpu backend did not start (see attempts)', adapter: description, attempts };
}

/**
 * onnxruntime-node's own WebGPU execution provider (listed as bundled by 1.30; not one the onnx
 * backend tries yet): the engine alone on prepared model inputs, beside the CPU provider on the
 * same inputs. Figures `engine.onnx.<provider>.batch_<n>.images_per_s`.
 */
async function probeOrtWebgpu(opts: { modelDir: string; seconds: number }): Promise<object> {
  const ort = (await import('onnxruntime-node')) as typeof import('onnxruntime-node');
  const { card, dir } = await loadModelCard(opts.modelDir);
  const bytes = await readFile(modelFile(card, dir, 'onnx')!);
  const figures: Figures = {};
  const result: Record<string, unknown> = { figures };
  for (const provider of ['webgpu', 'cpu'] as const) {
    let session: import('onnxruntime-node').InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, { executionProviders: [provider], graphOptimizationLevel: 'all' });
    } catch (err) {
      result[provider] = {
        status: 'absent',
        reason: `InferenceSession.create with executionProviders ['${provider}'] failed: ${(err as Error).message.split('\n')[0]}`,
      };
      continue;
    }
    try {
      const inputName = card.input.name ?? session.inputNames[0]!;
      for (const batch of CROP_BATCHES) {
        const data = new Float32Array(batch * card.input.width * card.input.height * card.input.channels).map((_, i) => (i % 251) / 251);
        const feeds = { [inputName]: new ort.Tensor('float32', data, tensorShape(card.input, batch)) };
        await session.run(feeds);
        const t0 = performance.now();
        await session.run(feeds);
        const calls = callsFor(opts.seconds, (performance.now() - t0) / 1000, 500);
        const t1 = performance.now();
        for (let k = 0; k < calls; k++) await session.run(feeds);
        figures[`engine.onnx.${provider}.batch_${batch}.images_per_s`] = Math.round((calls * batch) / ((performance.now() - t1) / 1000));
      }
      result[provider] = { status: 'measured' };
    } finally {
      await session.release();
    }
  }
  return result;
}

// ---------------------------------------------------------------- the orchestrating parent

interface StepRecord {
  name: string;
  ok: boolean;
  wall_s: number;
  error?: string;
}

type StepResult = ({ ok: true; value: Record<string, unknown> } | { ok: false; error: string }) & { partial: Figures };

/**
 * Run `--step <args>` of this file in a child with `timeoutMs`; its last stdout line is its JSON
 * answer, earlier `{"partial": figures}` lines what it had measured by then.
 */
function runStep(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<StepResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--step', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const lastPartial = (): Figures => {
      const line = stdout
        .split('\n')
        .filter((l) => l.startsWith('{"partial":'))
        .pop();
      return line ? ((JSON.parse(line) as { partial: Figures }).partial ?? {}) : {};
    };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      const partial = lastPartial();
      if (timedOut) return resolve({ ok: false, partial, error: `step ${args.join(' ')} did not finish within ${Math.round(timeoutMs / 1000)} s; killed` });
      try {
        const value = JSON.parse(last) as Record<string, unknown>;
        if (code === 0 && !('partial' in value)) return resolve({ ok: true, value, partial });
        return resolve({ ok: false, partial, error: typeof value.error === 'string' ? value.error : `exit ${code}` });
      } catch {
        resolve({
          ok: false,
          partial,
          error: `step ${args.join(' ')} ended (${signal ?? `exit ${code}`}) without a JSON answer${last ? `: ${last.slice(0, 300)}` : ''}`,
        });
      }
    });
  });
}

async function check(opts: { modelDir: string; images: string; out?: string; budgetS: number; seconds: number }): Promise<object> {
  const started = Date.now();
  const deadline = started + opts.budgetS * 1000;
  const figures: Figures = {};
  const steps: StepRecord[] = [];
  const engines: Record<string, { status: string; device?: string; reason?: string }> = {};
  const doc: Record<string, unknown> = {
    device_check: {
      started_at: new Date(started).toISOString(),
      machine: `${availableParallelism()} cores, ${cpus()[0]?.model ?? 'cpu'}`,
      load_average_1m: r3(loadavg()[0]!),
      node: process.version,
      uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
      budget_s: opts.budgetS,
      seconds_per_measurement: opts.seconds,
    },
    detect: {},
    engines,
    figures,
    targets: {},
    steps,
  };
  const save = async () => {
    (doc.device_check as Record<string, unknown>).wall_s = r3((Date.now() - started) / 1000);
    const crops = bestFigure(figures, /\.crops\.batch_\d+\.frames_per_s$/, true);
    const frames = bestFigure(figures, /\.frames_1280x960\..+\.frames_per_s$/, true);
    const verdict = (best: typeof crops, target: number) =>
      best ? { target, best, met: best.value >= target } : { target, best: null, met: null, reason: 'no GPU engine was measured' };
    doc.targets = {
      crops_per_s: { ...verdict(crops, TARGETS.cropsPerS), best_cpu: bestFigure(figures, /\.cpu\.crops\.batch_\d+\.frames_per_s$/, false) ?? null },
      frames_1280x960_per_s: {
        ...verdict(frames, TARGETS.framesPerS),
        best_cpu: bestFigure(figures, /\.cpu\.frames_1280x960\..+\.frames_per_s$/, false) ?? null,
      },
    };
    if (opts.out) await writeFile(opts.out, JSON.stringify(doc, null, 2) + '\n');
  };
  const step = async (name: string, args: string[], env: NodeJS.ProcessEnv, maxS: number) => {
    const left = deadline - Date.now() - 5_000;
    if (left < 20_000) {
      steps.push({ name, ok: false, wall_s: 0, error: `skipped: ${Math.max(0, Math.round(left / 1000))} s left of the ${opts.budgetS} s budget` });
      await save();
      return undefined;
    }
    log(`${name} (at most ${Math.round(Math.min(maxS * 1000, left) / 1000)} s)`);
    const t0 = Date.now();
    const r = await runStep(args, env, Math.min(maxS * 1000, left));
    steps.push({ name, ok: r.ok, wall_s: r3((Date.now() - t0) / 1000), ...(r.ok ? {} : { error: r.error }) });
    await save();
    return r;
  };
  const common = ['--model', opts.modelDir, '--images', opts.images, '--seconds', String(opts.seconds)];
  const merge = (r: Awaited<ReturnType<typeof step>>, engine: string) => {
    if (!r) return undefined;
    if (!r.ok) {
      Object.assign(figures, r.partial);
      const kept = Object.keys(r.partial).length;
      engines[engine] = { status: 'failed', reason: kept ? `${r.error} (the ${kept} figures measured before are kept)` : r.error };
      return undefined;
    }
    Object.assign(figures, r.value.figures as Figures);
    engines[engine] = { status: 'measured', device: String(r.value.device) };
    return r.value;
  };

  // (a) what is there
  const t0 = Date.now();
  const [nvidia, vulkan, ortNode, ortPython] = await Promise.all([detectNvidia(), detectVulkan(), detectOrtNode(), detectOrtPython()]);
  doc.detect = { nvidia_smi: nvidia, vulkan, onnxruntime_node: ortNode, onnxruntime_python: ortPython };
  steps.push({ name: 'detect', ok: true, wall_s: r3((Date.now() - t0) / 1000) });
  engines['tfjs.tfjs-node-gpu'] = {
    status: 'absent',
    reason: '@tensorflow/tfjs-node-gpu (CUDA 11.2 + cuDNN 8.1, its own libtensorflow) is not carried in the bundle',
  };
  for (const p of ['tensorrt', 'cuda'] as const)
    if (ortNode.providers[p].status === 'absent') engines[`onnx.${p}`] = { status: 'absent', reason: ortNode.providers[p].reason };
  await save();

  // (b) the CPU reference first, so its figures exist whatever the GPU paths do
  const cpu = merge(await step('bench onnx-cpu', ['bench', '--engine', 'onnx-cpu', ...common], { CRYSTALWATCH_ORT_GPU: '0' }, 150), 'onnx.cpu');
  const reference = (cpu?.pPG as (number | null)[] | undefined) ?? [];
  const agreement = (value: Record<string, unknown> | undefined) => {
    if (!value) return;
    const deltas = (value.pPG as (number | null)[]).flatMap((p, i) => (p !== null && typeof reference[i] === 'number' ? [Math.abs(p - reference[i]!)] : []));
    if (deltas.length) figures[`classify.${String(value.backend)}.${String(value.device)}.crops.max_abs_delta_p_pg_vs_onnx_cpu`] = r3(Math.max(...deltas));
  };

  if (ortNode.providers.cuda.status === 'present' || ortNode.providers.tensorrt.status === 'present') {
    const gpu = merge(await step('bench onnx-gpu', ['bench', '--engine', 'onnx-gpu', ...common], {}, 150), 'onnx.gpu');
    agreement(gpu);
    if (gpu && gpu.device === 'cpu')
      engines['onnx.gpu'] = { status: 'failed', device: 'cpu', reason: 'the GPU providers are installed but fell back to the CPU (see logs)' };
  }

  const ortWebgpu = await step('probe onnx-webgpu', ['onnx-webgpu', '--model', opts.modelDir, '--seconds', String(opts.seconds)], {}, 90);
  if (ortWebgpu?.ok) {
    Object.assign(figures, ortWebgpu.value.figures as Figures);
    const w = ortWebgpu.value.webgpu as { status: string; reason?: string };
    engines['onnx.webgpu.engine_only'] = w;
    (doc.detect as Record<string, unknown>).onnxruntime_node_webgpu = w;
  } else if (ortWebgpu) engines['onnx.webgpu.engine_only'] = { status: 'failed', reason: ortWebgpu.error };

  const probe = await step('probe webgpu', ['webgpu', '--model', opts.modelDir, '--images', opts.images], { CRYSTALWATCH_TFJS_ENGINE: 'webgpu' }, 90);
  if (probe?.ok) {
    (doc.detect as Record<string, unknown>).webgpu = probe.value;
    const status = String(probe.value.status);
    if (status === 'loaded') {
      const worker = probe.value.worker === false ? ['--no-worker'] : [];
      agreement(
        merge(
          await step('bench tfjs-webgpu', ['bench', '--engine', 'tfjs-webgpu', ...common, ...worker], { CRYSTALWATCH_TFJS_ENGINE: 'webgpu' }, 180),
          'tfjs.webgpu',
        ),
      );
    } else engines['tfjs.webgpu'] = { status, reason: String(probe.value.reason) };
  } else if (probe) engines['tfjs.webgpu'] = { status: 'failed', reason: probe.error };
  await save();
  return doc;
}

// ---------------------------------------------------------------- command line

function arg(argv: string[], name: string, fallback?: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
}

async function renderImages(dir: string, nCrops: number, nFrames: number): Promise<void> {
  // The simulator (and @napi-rs/canvas) only where the images are made, never on the device.
  const sim = (await import('../simulator/index.js')) as typeof import('../simulator/index.js');
  await mkdir(join(dir, 'crops'), { recursive: true });
  await mkdir(join(dir, 'frames'), { recursive: true });
  // The seeds bench/classify.ts uses.
  for (let i = 0; i < nCrops; i++)
    await writeFile(join(dir, 'crops', `crop-${String(i).padStart(3, '0')}.png`), (await sim.renderCrop({ label: i % 2 ? 'pg' : 'cex', seed: 1000 + i })).png);
  for (let i = 0; i < nFrames; i++) {
    const frame = await sim.renderFrame({ seed: 7, frameIndex: i, tSeconds: 600 + i * 10, pgOnsetS: 300, width: 1280, height: 960 });
    await writeFile(join(dir, 'frames', `frame-${String(i).padStart(3, '0')}.png`), frame.png);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const modelDir = arg(argv, '--model', fileURLToPath(new URL('../../models/default', import.meta.url)))!;
  const images = arg(argv, '--images', 'device-images')!;
  const seconds = Number(arg(argv, '--seconds', '3'));
  try {
    if (argv[0] === '--step') {
      const value =
        argv[1] === 'webgpu'
          ? await probeWebgpu({ modelDir, images })
          : argv[1] === 'onnx-webgpu'
            ? await probeOrtWebgpu({ modelDir, seconds })
            : await benchEngine(arg(argv, '--engine') as Engine, { modelDir, images, seconds, worker: !argv.includes('--no-worker') });
      process.stdout.write(JSON.stringify(value) + '\n');
    } else if (argv[0] === '--render-images') {
      await renderImages(argv[1]!, Number(arg(argv, '--crops', '64')), Number(arg(argv, '--frames', '4')));
    } else {
      const budgetS = Number(arg(argv, '--budget-s', '400'));
      const doc = await check({ modelDir, images, out: arg(argv, '--out'), budgetS, seconds });
      process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    }
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: (err as Error).stack ?? String(err) }) + '\n');
    process.exit(1);
  }
  // Dawn and onnxruntime keep native handles open; nothing else is left to wait for.
  process.exit(0);
}
