/**
 * The TF.js twin of onnx-graph.ts: a tiny layers model (global average pool → dense with
 * sigmoid or softmax) written to `model.json` + `weights.bin`, for tests and the bench when
 * no shipped model is present. Same weights ⇒ same P(PG) as the tiny ONNX model.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TinyModelSpec } from './onnx-graph.js';

/** Write `dir/model.json` and `dir/weights.bin`; NHWC only (TF.js layers are channels-last). */
export async function writeTinyTfjsModel(dir: string, spec: TinyModelSpec): Promise<string> {
  if (spec.layout !== 'NHWC') throw new Error('tiny TF.js model: layout must be "NHWC" (TF.js layers are channels-last)');
  const tf = await import('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  const outputs = spec.kind === 'sigmoid' ? 1 : 2;
  const model = tf.sequential();
  model.add(tf.layers.globalAveragePooling2d({ inputShape: [spec.height, spec.width, spec.channels], name: spec.embeddingName ?? 'embedding' }));
  model.add(tf.layers.dense({ units: outputs, activation: spec.kind, name: 'output' }));
  model.getLayer('output').setWeights([tf.tensor2d(spec.weights, [spec.channels, outputs]), tf.tensor1d(spec.bias)]);
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = Buffer.from(artifacts.weightData as ArrayBuffer);
      await writeFile(join(dir, 'weights.bin'), weights);
      const json = {
        format: 'layers-model',
        generatedBy: 'crystalwatch tiny-tfjs',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.length } };
    }),
  );
  model.dispose();
  return join(dir, 'model.json');
}
