/**
 * Training throughput of CrystalNet on the TF.js backends this machine has (images/s through
 * forward + backward + Adam, batch 32, 64×64 grey), plus inference throughput of the exported
 * ONNX model on onnxruntime-node (what the classify stage runs).
 *
 *   node dist/bench/train.js [--quick]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadTf, type TfBackendName } from '../src/model/tf.js';
import { buildModel } from '../src/model/architecture.js';
import { exportOnnx } from '../src/model/onnx-export.js';

async function trainRate(backend: TfBackendName, width: number, norm: 'batch' | 'none', steps: number, batch = 32): Promise<number> {
  const { tf } = await loadTf(backend);
  const model = buildModel(tf, { inputSize: 64, seed: 1, width, norm });
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'binaryCrossentropy' });
  const x = tf.randomUniform([batch, 64, 64, 1], 0, 1, 'float32', 1);
  const y = tf.randomUniform([batch, 1], 0, 1, 'float32', 2).round();
  await model.trainOnBatch(x, y); // warm-up: kernels compiled, buffers allocated
  const start = performance.now();
  for (let i = 0; i < steps; i++) await model.trainOnBatch(x, y);
  const seconds = (performance.now() - start) / 1000;
  x.dispose();
  y.dispose();
  model.dispose();
  return (steps * batch) / seconds;
}

async function onnxRate(width: number, batch: number, rounds: number): Promise<number> {
  const { tf } = await loadTf('wasm');
  const dir = await mkdtemp(join(tmpdir(), 'cw-bench-train-'));
  try {
    const model = buildModel(tf, { inputSize: 64, seed: 1, width });
    const path = join(dir, 'model.onnx');
    await exportOnnx(model, path);
    model.dispose();
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 2 });
    const input = new ort.Tensor('float32', new Float32Array(batch * 64 * 64).fill(0.3), [batch, 64, 64, 1]);
    await session.run({ input });
    const start = performance.now();
    for (let i = 0; i < rounds; i++) await session.run({ input });
    const seconds = (performance.now() - start) / 1000;
    await session.release();
    return (rounds * batch) / seconds;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const steps = options.quick ? 4 : 20;
  const out: Record<string, number | string> = {};
  const round = (v: number) => Math.round(v * 10) / 10;
  const runtime = await loadTf();
  out['train.backend.best'] = runtime.backend;
  out['train.wasm.w8_bn.images_per_s'] = round(await trainRate('wasm', 8, 'batch', steps));
  out['train.wasm.w16_bn.images_per_s'] = round(await trainRate('wasm', 16, 'batch', steps));
  out['train.wasm.w8_fixup.images_per_s'] = round(await trainRate('wasm', 8, 'none', steps));
  // The plain JS backend is ~100–200× slower: a few small steps are enough to see it.
  out['train.cpu.w8_bn.images_per_s'] = round(await trainRate('cpu', 8, 'batch', options.quick ? 1 : 3, 8));
  if (runtime.backend !== 'wasm' && runtime.backend !== 'cpu')
    out[`train.${runtime.backend}.w8_bn.images_per_s`] = round(await trainRate(runtime.backend, 8, 'batch', steps));
  out['infer.onnxruntime.w8.batch64.images_per_s'] = round(await onnxRate(8, 64, options.quick ? 10 : 50));
  out['infer.onnxruntime.w16.batch64.images_per_s'] = round(await onnxRate(16, 64, options.quick ? 10 : 50));
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  bench({ quick: process.argv.includes('--quick') })
    .then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`))
    .catch((err) => {
      console.error(`bench train: ${(err as Error).message}`);
      process.exitCode = 1;
    });
}
