import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { loadTf, type TfRuntime } from '../src/model/tf.js';
import { buildModel, withEmbedding } from '../src/model/architecture.js';
import { exportOnnx } from '../src/model/onnx-export.js';
import { saveLayersModel, loadLayersModel } from '../src/model/io.js';

const run = promisify(execFile);
let dir: string;
let runtime: TfRuntime;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cw-model-export-'));
  runtime = await loadTf('wasm');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A model with every weight (and BN statistic) set to non-trivial values, so no layer hides as an identity. */
function perturbedModel(norm: 'batch' | 'none', seed: number) {
  const { tf } = runtime;
  const model = buildModel(tf, { inputSize: 64, seed, norm });
  const names = model.weights.map((w) => w.originalName);
  model.setWeights(
    model
      .getWeights()
      .map((w, i) =>
        names[i]!.includes('moving_variance')
          ? tf.randomUniform(w.shape, 0.5, 2, 'float32', seed + i)
          : tf.randomNormal(w.shape, 0, norm === 'batch' ? 0.15 : 0.05, 'float32', seed + i),
      ),
  );
  return model;
}

function pythonCheck(path: string): void {
  execFileSync('/usr/bin/python3', ['-c', `import onnx; onnx.checker.check_model(onnx.load(${JSON.stringify(path)}), full_check=True)`]);
}

describe('ONNX export', () => {
  for (const norm of ['batch', 'none'] as const) {
    it(`(${norm === 'batch' ? 'BatchNorm' : 'Fixup'} variant) passes the onnx checker and matches TF.js within 1e-4 on both outputs`, async () => {
      const { tf } = runtime;
      const model = perturbedModel(norm, norm === 'batch' ? 10 : 20);
      const path = join(dir, `${norm}.onnx`);
      const info = await exportOnnx(model, path);
      expect(info).toMatchObject({ opset: 17, irVersion: 8, input: { name: 'input', shape: ['batch', 64, 64, 1], layout: 'NHWC' } });
      expect(info.outputs).toEqual([
        { name: 'p_pg', shape: ['batch', 1] },
        { name: 'embedding', shape: ['batch', 64] },
      ]);
      pythonCheck(path);

      const decoded = onnxProto.onnx.ModelProto.decode(await readFile(path));
      expect(Number(decoded.irVersion)).toBe(8);
      expect(Number(decoded.opsetImport[0]!.version)).toBe(17);

      const x = tf.randomUniform([6, 64, 64, 1], 0, 1, 'float32', 7);
      const [p, e] = withEmbedding(tf, model).predict(x) as [import('@tensorflow/tfjs').Tensor, import('@tensorflow/tfjs').Tensor]; // [P(PG), embedding]
      const session = await ort.InferenceSession.create(path);
      try {
        const r = await session.run({ input: new ort.Tensor('float32', x.dataSync() as Float32Array, [6, 64, 64, 1]) });
        assert(r.p_pg && r.embedding, 'outputs p_pg and embedding');
        const diff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)));
        const pTf = p.dataSync();
        // P(PG) away from 0 and 1, so the comparison is not between two saturated sigmoids.
        expect(Math.min(...pTf)).toBeGreaterThan(0.01);
        expect(Math.max(...pTf)).toBeLessThan(0.99);
        expect(diff(pTf, r.p_pg.data as Float32Array)).toBeLessThan(1e-4);
        expect(diff(e.dataSync(), r.embedding.data as Float32Array)).toBeLessThan(1e-4);
      } finally {
        await session.release();
      }
      model.dispose();
    });
  }

  it('round-trips through model.json and `crystalwatch export --format onnx`', async () => {
    const { tf } = runtime;
    const model = perturbedModel('batch', 30);
    const modelDir = join(dir, 'saved');
    await saveLayersModel(tf, model, modelDir);
    const reloaded = await loadLayersModel(tf, modelDir);
    const x = tf.randomUniform([2, 64, 64, 1], 0, 1, 'float32', 8);
    expect(Array.from((reloaded.predict(x) as import('@tensorflow/tfjs').Tensor).dataSync())).toEqual(
      Array.from((model.predict(x) as import('@tensorflow/tfjs').Tensor).dataSync()),
    );

    const { stdout } = await run(process.execPath, ['bin/crystalwatch.js', 'export', '--model', modelDir, '--format', 'onnx', '--json'], {
      cwd: join(import.meta.dirname, '..'),
    });
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({ file: join(modelDir, 'model.onnx'), opset: 17, irVersion: 8 });
    pythonCheck(summary.file);
    const session = await ort.InferenceSession.create(summary.file);
    try {
      const r = await session.run({ input: new ort.Tensor('float32', x.dataSync() as Float32Array, [2, 64, 64, 1]) });
      assert(r.p_pg, 'output p_pg');
      const expected = (model.predict(x) as import('@tensorflow/tfjs').Tensor).dataSync();
      Array.from(r.p_pg.data as Float32Array).forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThan(1e-4));
    } finally {
      await session.release();
    }
    await expect(
      run(process.execPath, ['bin/crystalwatch.js', 'export', '--model', modelDir, '--format', 'tflite'], { cwd: join(import.meta.dirname, '..') }),
    ).rejects.toThrow(/--format must be onnx, got "tflite"/);
  });
});
