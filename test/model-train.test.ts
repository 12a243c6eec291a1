import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { generateDataset } from '../simulator/index.js';
import { loadTf, type TfRuntime } from '../src/model/tf.js';
import { buildModel } from '../src/model/architecture.js';
import { loadDataset } from '../src/model/dataset.js';
import { train } from '../src/model/train.js';
import { loadModelCard } from '../src/model/card.js';
import { loadLayersModel } from '../src/model/io.js';
import { withEmbedding } from '../src/model/architecture.js';

let dir: string;
let runtime: TfRuntime;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cw-model-train-'));
  await generateDataset({ out: join(dir, 'data'), count: 48, seed: 11, layout: 'opencrystaldata', split: null });
  runtime = await loadTf('wasm');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('wasm training kernels', () => {
  it('give the same convolution gradients as the reference CPU backend', async () => {
    const { tf } = runtime;
    for (const [size, stride, pad, k] of [
      [9, 1, 'same', 3],
      [8, 2, 'same', 3],
      [9, 2, 'valid', 3],
      [7, 3, 'same', 5],
    ] as const) {
      const x = tf.randomNormal([2, size, size, 3], 0, 1, 'float32', 1).arraySync() as number[][][][];
      const w = tf.randomNormal([k, k, 3, 4], 0, 1, 'float32', 2).arraySync() as number[][][][];
      const f = (a: import('@tensorflow/tfjs').Tensor4D, b: import('@tensorflow/tfjs').Tensor4D) => tf.conv2d(a, b, stride, pad).square().sum();
      const grads = () =>
        tf
          .grads(f as never)([tf.tensor4d(x), tf.tensor4d(w)])
          .map((g) => Array.from(g.dataSync()));
      await tf.setBackend('wasm');
      const [wasmDx, wasmDw] = grads();
      await tf.setBackend('cpu');
      const [cpuDx, cpuDw] = grads();
      assert(wasmDx && wasmDw && cpuDx && cpuDw, 'dx and dW on both backends');
      await tf.setBackend('wasm');
      const rel = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!))) / Math.max(...b.map(Math.abs));
      expect(rel(wasmDx, cpuDx), `dx ${size} ${stride} ${pad} ${k}`).toBeLessThan(1e-5);
      expect(rel(wasmDw, cpuDw), `dW ${size} ${stride} ${pad} ${k}`).toBeLessThan(1e-5);
    }
  });
});

describe('BatchNorm gradient override', () => {
  it('matches the gradient of batch normalisation written out in primitive ops', () => {
    const { tf } = runtime;
    const x = tf.randomNormal([4, 5, 5, 3], 0, 2, 'float32', 3);
    const mean = tf.tensor1d([0.1, -0.3, 0.5]);
    const variance = tf.tensor1d([1.5, 0.7, 2.2]);
    const scale = tf.tensor1d([0.9, 1.2, -0.4]);
    const offset = tf.tensor1d([0.05, 0.2, -0.1]);
    const weights = tf.randomNormal([4, 5, 5, 3], 0, 1, 'float32', 4);
    type T = import('@tensorflow/tfjs').Tensor;
    const fused = (a: T, m: T, v: T, s: T, o: T) => tf.batchNorm(a, m, v, o, s, 1e-3).mul(weights).sum();
    const written = (a: T, m: T, v: T, s: T, o: T) =>
      a
        .sub(m)
        .mul(tf.rsqrt(v.add(1e-3)))
        .mul(s)
        .add(o)
        .mul(weights)
        .sum();
    const ours = tf.grads(fused as never)([x, mean, variance, scale, offset]);
    const reference = tf.grads(written as never)([x, mean, variance, scale, offset]);
    ours.forEach((g, i) => {
      const a = g.dataSync();
      const b = reference[i]!.dataSync();
      const scaleOf = Math.max(...Array.from(b, Math.abs));
      expect(Math.max(...Array.from(a, (v, k) => Math.abs(v - b[k]!))) / scaleOf, `input ${i}`).toBeLessThan(1e-5);
    });
  });
});

describe('training', () => {
  it('lowers the loss on a tiny simulator set in one short epoch', async () => {
    const { tf } = runtime;
    const data = await loadDataset(join(dir, 'data'), { inputSize: 64, seed: 1 });
    expect(data.entries).toHaveLength(48);
    const n = data.entries.length;
    // Interleave the classes (the folders list all CEX, then all PG) so every step sees both.
    const cex = [...data.labels.keys()].filter((i) => data.labels[i] === 0);
    const pg = [...data.labels.keys()].filter((i) => data.labels[i] === 1);
    expect(pg).toHaveLength(cex.length);
    const order = cex.flatMap((c, k) => [c, pg[k]!]);
    const plane = 64 * 64;
    const pixels = new Float32Array(n * plane);
    order.forEach((i, k) =>
      pixels.set(
        Float32Array.from(data.pixels.subarray(i * plane, (i + 1) * plane), (p) => p / 255),
        k * plane,
      ),
    );
    const x = tf.tensor4d(pixels, [n, 64, 64, 1]);
    const y = tf.tensor2d(
      Float32Array.from(order, (i) => data.labels[i]!),
      [n, 1],
    );
    // The default architecture (BatchNorm), dropout off so the loss is not noisy. The loss is
    // measured in training mode (batch statistics): BN's moving averages need many more steps
    // than one short epoch to settle.
    const model = buildModel(tf, { inputSize: 64, seed: 4, dropout: 0 });
    model.compile({ optimizer: tf.train.adam(2e-3), loss: 'binaryCrossentropy' });
    const lossOf = () =>
      tf.tidy(() => {
        const p = model.apply(x, { training: true }) as import('@tensorflow/tfjs').Tensor;
        return tf.metrics.binaryCrossentropy(y, p).mean().dataSync()[0]!;
      });
    const before = lossOf();
    // One epoch = 6 steps of 8 crops; three passes keep the test robust to one noisy step.
    for (let pass = 0; pass < 3; pass++) {
      for (let start = 0; start < n; start += 8) {
        const xb = x.slice([start, 0, 0, 0], [8, 64, 64, 1]);
        const yb = y.slice([start, 0], [8, 1]);
        await model.trainOnBatch(xb, yb);
        xb.dispose();
        yb.dispose();
      }
    }
    const after = lossOf();
    expect(after).toBeLessThan(before);
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it('writes a valid card, TF.js and ONNX models that agree within 1e-4, and the report', async () => {
    const out = join(dir, 'model');
    const lines: string[] = [];
    const result = await train({ data: join(dir, 'data'), out, epochs: 1, batchSize: 16, seed: 2, backend: 'wasm', progress: (l) => lines.push(l) });
    expect(result.epochsRun).toBe(1);
    expect(lines.some((l) => /leakage guard: 0 duplicate groups/.test(l))).toBe(true);
    expect(lines.some((l) => /^epoch 1\/1 .*loss .* acc .*F1\(PG\)/.test(l))).toBe(true);

    const { card } = await loadModelCard(out);
    expect(card.input).toMatchObject({
      layout: 'NHWC',
      width: 64,
      height: 64,
      channels: 1,
      colorOrder: 'gray',
      resize: 'squash',
      normalization: 'unit',
      name: 'input',
    });
    expect(card.output).toMatchObject({ kind: 'sigmoid', name: 'p_pg', embeddingName: 'embedding' });
    expect(card.provenance).toMatchObject({ seed: 2, epochs: 1 });
    expect(card.architecture?.parameters).toBe(29_513);
    expect(card.ood?.threshold).toBeGreaterThan(0);
    for (const f of ['report.md', 'report.json', 'confusion.png', 'roc.png', 'threshold.png', 'training.png', 'embedding.png']) {
      expect((await stat(join(out, 'report', f))).size, f).toBeGreaterThan(100);
    }

    execFileSync('/usr/bin/python3', ['-c', `import onnx; onnx.checker.check_model(onnx.load(${JSON.stringify(join(out, 'model.onnx'))}), full_check=True)`]);

    const { tf } = runtime;
    const model = withEmbedding(tf, await loadLayersModel(tf, out));
    const data = await loadDataset(join(dir, 'data'), { inputSize: 64, seed: 1, nearBits: -1 });
    const batch = Float32Array.from(data.pixels.subarray(0, 8 * 64 * 64), (p) => p / 255);
    const [p, e] = model.predict(tf.tensor4d(batch, [8, 64, 64, 1])) as [import('@tensorflow/tfjs').Tensor, import('@tensorflow/tfjs').Tensor]; // [P(PG), embedding]
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    try {
      const r = await session.run({ input: new ort.Tensor('float32', batch, [8, 64, 64, 1]) });
      assert(r.p_pg && r.embedding, 'outputs p_pg and embedding');
      const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)));
      expect(maxDiff(p.dataSync(), r.p_pg.data as Float32Array)).toBeLessThan(1e-4);
      expect(maxDiff(e.dataSync(), r.embedding.data as Float32Array)).toBeLessThan(1e-4);
      expect(r.p_pg.dims).toEqual([8, 1]);
      expect(r.embedding.dims).toEqual([8, 32]);
    } finally {
      await session.release();
    }
  });
});
