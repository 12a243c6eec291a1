/**
 * Classify throughput and latency: frames/s and per-frame latency for batch 1, 8, 32, 64 on
 * every backend present, for crops and for tiled 1280×960 frames, plus the effect of
 * UV_THREADPOOL_SIZE (and sharp's own concurrency) on decoding many small images.
 *
 *   node dist/bench/classify.js [--quick]
 *
 * Uses $CRYSTALWATCH_BENCH_MODEL or models/default when it is there; otherwise a tiny stand-in with the default model's
 * signature (64×64 grey, 192/160 tiles) so the figures measure the pipeline, not a CNN — the
 * `classify.model` figure says which.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { Classifier } from '../src/classify/index.js';
import { loadModelCard } from '../src/model/card.js';
import { writeTinyModelDir } from '../src/classify/fixtures.js';
import { channelTransform, cropAndResize, decodeImage, tileRegions, tilesByFrameResize, writeTensor } from '../src/classify/preprocess.js';
import { openBackend } from '../src/classify/backends/index.js';
import type { ModelCard } from '../src/model/card.js';
import { defaultModelDir } from '../src/classify/command.js';
import { renderCrop, renderFrame } from '../simulator/index.js';
import { measure, measureStage, percentile } from './classify-measure.js';

type Figures = Record<string, number | string>;

const r3 = (v: number) => Math.round(v * 1000) / 1000;

async function crops(n: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push((await renderCrop({ label: i % 2 ? 'pg' : 'cex', seed: 1000 + i })).png);
  return out;
}

/** CPU milliseconds per item of `fn` over `items`, `reps` times, one at a time. */
async function cpuMsPer<T>(items: T[], reps: number, fn: (item: T) => Promise<unknown>): Promise<number> {
  for (const item of items.slice(0, 2)) await fn(item);
  const cpu0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) for (const item of items) await fn(item);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000 / (reps * items.length);
}

/**
 * The bare minimum for the same crops, beside the pipeline's figure: decoding alone (the decoder
 * the pipeline uses), and the ONNX engine alone on the same model inputs at batch 64 (on this
 * thread: no worker hop, no gates, no resize). The pipeline's cost over their sum is the ratio.
 */
async function bareCrops(modelDir: string, card: ModelCard, images: Buffer[], quick: boolean): Promise<{ decodeMs: number; engineMs: number }> {
  const decodeMs = await cpuMsPer(images, quick ? 4 : 16, (b) => decodeImage(b));
  const { input } = card;
  const batch = 64;
  const tensor = new Float32Array(batch * input.width * input.height * input.channels);
  const transform = channelTransform(input);
  for (let k = 0; k < batch; k++) {
    const image = await decodeImage(images[k % images.length]!);
    writeTensor(await cropAndResize(image, { x: 0, y: 0, width: image.width, height: image.height }, input), input, transform, tensor, k);
  }
  const engine = await openBackend({ modelDir, card, backend: 'onnx', maxBatchSize: batch, threads: availableParallelism() });
  try {
    const perBatch = await cpuMsPer([tensor], quick ? 16 : 64, (t) => engine.run(t, batch));
    return { decodeMs, engineMs: perBatch / batch };
  } finally {
    await engine.close();
  }
}

/**
 * The bare minimum for full frames, as the default classifier runs them: decoding alone, and the
 * engine alone on the same frames' model inputs — the trunk once per frame on the resized frame
 * (feature-map inference), or every tile (per-tile inference) — prepared before the clock starts.
 */
export async function bareFrames(modelDir: string, frames: Buffer[], quick: boolean): Promise<{ decodeMs: number; engineMs: number; frameInference: string }> {
  const round = (v: number) => Math.round(v * 100) / 100;
  const decodeMs = await cpuMsPer(frames, quick ? 2 : 6, (b) => decodeImage(b));
  const probe = await Classifier.load(modelDir, { backend: 'onnx' });
  const { frameInference } = probe.info;
  const { card } = probe;
  await probe.close();
  const { input } = card;
  const tiling = card.tiling ?? { tile: Math.max(input.width, input.height), stride: Math.max(input.width, input.height) };
  const transform = channelTransform(input);
  const image = await decodeImage(frames[0]!, undefined, { grey: input.channels === 1 });
  const engine = await openBackend({
    modelDir,
    card,
    backend: 'onnx',
    maxBatchSize: 32,
    threads: availableParallelism(),
    featureMap: frameInference === 'feature-map',
  });
  try {
    if (frameInference === 'feature-map' && engine.runFeatureMap) {
      const width = Math.round((image.width * input.width) / tiling.tile);
      const height = Math.round((image.height * input.height) / tiling.tile);
      const shape = { ...input, width, height };
      const scaled = await cropAndResize(image, { x: 0, y: 0, width: image.width, height: image.height }, { ...shape, resize: 'squash' });
      const tensor = new Float32Array(width * height * input.channels);
      writeTensor(scaled, shape, transform, tensor, 0);
      return {
        decodeMs: round(decodeMs),
        engineMs: round(await cpuMsPer([tensor], quick ? 8 : 24, (t) => engine.runFeatureMap!(t, 1, width, height))),
        frameInference,
      };
    }
    const regions = tileRegions(image.width, image.height, tiling.tile, tiling.stride);
    const tiles = (await tilesByFrameResize(image, regions, tiling.tile, input)) ?? [];
    const batch = 32;
    const tensors: Float32Array[] = [];
    for (let start = 0; start < tiles.length; start += batch) {
      const chunk = tiles.slice(start, start + batch);
      const tensor = new Float32Array(chunk.length * input.width * input.height * input.channels);
      chunk.forEach((pixels, k) => writeTensor(pixels, input, transform, tensor, k));
      tensors.push(tensor);
    }
    const perFrame = await cpuMsPer([tensors], quick ? 4 : 12, async (all) => {
      for (const t of all) await engine.run(t, t.length / (input.width * input.height * input.channels));
    });
    return { decodeMs: round(decodeMs), engineMs: round(perFrame), frameInference };
  } finally {
    await engine.close();
  }
}

/** Decode `count` crops with the pool sizes of this process; run in a child per setting. */
async function decodeRun(count: number, sharpConcurrency: number | undefined): Promise<number> {
  if (sharpConcurrency !== undefined) sharp.concurrency(sharpConcurrency);
  const images = await crops(64);
  await Promise.all(images.map((b) => decodeImage(b)));
  const t0 = performance.now();
  // 64 in flight at a time: what the classify stage does with a batch of small frames.
  for (let done = 0; done < count; done += images.length) await Promise.all(images.map((b) => decodeImage(b)));
  return (Math.ceil(count / images.length) * images.length) / ((performance.now() - t0) / 1000);
}

function decodeChild(uvThreads: number, sharpConcurrency: number | undefined, count: number): Promise<number> {
  const self = fileURLToPath(import.meta.url);
  const args = [self, '--decode-child', String(count), ...(sharpConcurrency !== undefined ? ['--sharp-concurrency', String(sharpConcurrency)] : [])];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env: { ...process.env, UV_THREADPOOL_SIZE: String(uvThreads) } }, (err, stdout) => {
      if (err) reject(new Error(`bench classify: decode child (UV_THREADPOOL_SIZE=${uvThreads}) failed: ${err.message}`, { cause: err }));
      else resolve(Number(JSON.parse(stdout).fps));
    });
  });
}

export async function bench(options: { quick: boolean }): Promise<Figures> {
  const quick = options.quick;
  const out: Figures = { 'classify.machine': `${availableParallelism()} cores, ${cpus()[0]?.model ?? 'cpu'}`, 'classify.load_average_1m': r3(loadavg()[0]!) };
  const tmp = await mkdtemp(join(tmpdir(), 'cw-bench-classify-'));
  try {
    // CRYSTALWATCH_BENCH_MODEL measures another model folder (a candidate, a plant's own).
    let modelDir = process.env.CRYSTALWATCH_BENCH_MODEL ?? defaultModelDir();
    if (!existsSync(join(modelDir, 'card.json'))) {
      // The default model's signature (crystalwatch train): 64×64 grey, unit, 192/160 tiles.
      modelDir = await writeTinyModelDir(
        join(tmp, 'model'),
        { layout: 'NHWC', width: 64, height: 64, channels: 1, kind: 'sigmoid', weights: [1], bias: [0] },
        {
          name: 'tiny-proxy',
          input: { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' },
          output: { kind: 'sigmoid' },
          tiling: { tile: 192, stride: 160 },
        },
      );
    }
    const { card } = await loadModelCard(modelDir);
    out['classify.model'] = `${card.name}@${card.version} (${card.input.width}×${card.input.height}×${card.input.channels} ${card.input.layout})`;
    const cropImages = await crops(quick ? 32 : 128);
    const frames: Buffer[] = [];
    for (let i = 0; i < (quick ? 2 : 6); i++)
      frames.push((await renderFrame({ seed: 7, frameIndex: i, tSeconds: 600 + i * 10, pgOnsetS: 300, width: 1280, height: 960 })).png);

    const backends: ('onnx' | 'tfjs')[] = [];
    if (card.format === 'onnx' || card.files?.onnx) backends.push('onnx');
    if (card.format === 'tfjs' || card.files?.tfjs) backends.push('tfjs');
    for (const backend of backends) {
      const engineSeconds: number[] = [];
      const classifier = await Classifier.load(modelDir, { backend, maxBatchSize: 64, onInference: (s) => engineSeconds.push(s) });
      try {
        const { device } = classifier.info;
        const key = `classify.${backend}.${device}`;
        out[`${key}.device`] = device;
        const slow = backend === 'tfjs';
        if (backend === 'onnx') {
          const bare = await bareCrops(modelDir, card, cropImages, quick);
          out['classify.bare.crops.decode_cpu_ms'] = r3(bare.decodeMs);
          out['classify.bare.crops.engine_batch_64_cpu_ms'] = r3(bare.engineMs);
        }
        for (const batch of [1, 8, 32, 64]) {
          const total = Math.max(batch, (quick ? 64 : 512) / (slow ? 4 : 1));
          engineSeconds.length = 0;
          const m = await measure(classifier, cropImages, batch, total);
          out[`${key}.crops.batch_${batch}.frames_per_s`] = Math.round(m.fps);
          out[`${key}.crops.batch_${batch}.latency_p50_ms`] = r3(m.p50);
          out[`${key}.crops.batch_${batch}.latency_p99_ms`] = r3(m.p99);
          out[`${key}.crops.batch_${batch}.cpu_ms_per_frame`] = r3(m.cpuMs);
          const engine = [...engineSeconds].sort((a, b) => a - b);
          out[`${key}.crops.batch_${batch}.engine_p50_ms`] = r3(percentile(engine, 50) * 1000);
          if (batch === 1) out[`${key}.crops.batch_1.engine_p99_ms`] = r3(percentile(engine, 99) * 1000);
          const bare = Number(out['classify.bare.crops.decode_cpu_ms']) + Number(out['classify.bare.crops.engine_batch_64_cpu_ms']);
          if (backend === 'onnx' && bare > 0) out[`${key}.crops.batch_${batch}.cpu_over_bare`] = r3(m.cpuMs / bare);
        }
        if (backend === 'onnx') {
          // Through the stage's micro-batcher, two calls in flight: what the classify stage delivers.
          const s = await measureStage(classifier, cropImages, 64, quick ? 256 : 2048);
          out[`${key}.crops.stage_batch_64.frames_per_s`] = Math.round(s.fps);
          out[`${key}.crops.stage_batch_64.cpu_ms_per_frame`] = r3(s.cpuMs);
          const bare = await bareFrames(modelDir, frames, quick);
          out['classify.bare.frames_1280x960.decode_cpu_ms'] = bare.decodeMs;
          out['classify.bare.frames_1280x960.engine_cpu_ms'] = bare.engineMs;
          out['classify.bare.frames_1280x960.frame_inference'] = bare.frameInference;
        }
        // Full frames: tiled (the card's tiles, e.g. 7×6 = 42 of 192 px every 160 at 1280×960); batch = tiles per inference call.
        for (const batch of quick ? [32] : [8, 32, 64]) {
          const tiled = await Classifier.load(modelDir, { backend, maxBatchSize: batch });
          try {
            const m = await measure(tiled, frames, 1, quick ? 4 : 12);
            out[`${key}.frames_1280x960.tile_batch_${batch}.frames_per_s`] = r3(m.fps);
            out[`${key}.frames_1280x960.tile_batch_${batch}.latency_p50_ms`] = r3(m.p50);
            out[`${key}.frames_1280x960.tile_batch_${batch}.cpu_ms_per_frame`] = r3(m.cpuMs);
            const bare = Number(out['classify.bare.frames_1280x960.decode_cpu_ms']) + Number(out['classify.bare.frames_1280x960.engine_cpu_ms']);
            if (backend === 'onnx' && bare > 0) out[`${key}.frames_1280x960.tile_batch_${batch}.cpu_over_bare`] = r3(m.cpuMs / bare);
            if (backend === 'onnx' && batch === 32) {
              // Through the stage's micro-batcher (32 frames a call at most, two calls in flight).
              const s = await measureStage(tiled, frames, 32, quick ? 16 : 192);
              out[`${key}.frames_1280x960.stage_batch_32.frames_per_s`] = r3(s.fps);
              out[`${key}.frames_1280x960.stage_batch_32.cpu_ms_per_frame`] = r3(s.cpuMs);
              if (bare > 0) out[`${key}.frames_1280x960.stage_batch_32.cpu_over_bare`] = r3(s.cpuMs / bare);
            }
          } finally {
            await tiled.close();
          }
        }
      } finally {
        await classifier.close();
      }
    }

    // Decoding many small PNGs: libuv's pool (UV_THREADPOOL_SIZE, read at process start) and
    // sharp's per-image threads compete for the same 2 cores.
    const count = quick ? 256 : 1024;
    for (const uv of quick ? [1, 4] : [1, 2, 4, 8]) {
      out[`classify.decode.uv_threads_${uv}.crops_per_s`] = Math.round(await decodeChild(uv, undefined, count));
      out[`classify.decode.uv_threads_${uv}.sharp_concurrency_1.crops_per_s`] = Math.round(await decodeChild(uv, 1, count));
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--decode-child');
  if (i >= 0) {
    const j = process.argv.indexOf('--sharp-concurrency');
    const fps = await decodeRun(Number(process.argv[i + 1]), j >= 0 ? Number(process.argv[j + 1]) : undefined);
    process.stdout.write(JSON.stringify({ fps }) + '\n');
  } else {
    const result = await bench({ quick: process.argv.includes('--quick') });
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  }
}
