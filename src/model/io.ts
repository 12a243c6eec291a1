/**
 * TF.js layers models on disk without tfjs-node: `model.json` (topology + weights manifest)
 * and one `weights.bin`, the format `tf.loadLayersModel('file://…/model.json')` reads.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

export const TFJS_MODEL_FILE = 'model.json';
export const TFJS_WEIGHTS_FILE = 'weights.bin';

export async function saveLayersModel(tf: Tf, model: tfTypes.LayersModel, dir: string): Promise<{ modelJson: string; weightsBytes: number }> {
  await mkdir(dir, { recursive: true });
  let weightsBytes = 0;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData =
        artifacts.weightData instanceof ArrayBuffer ? artifacts.weightData : tf.io.concatenateArrayBuffers(artifacts.weightData as ArrayBuffer[]);
      weightsBytes = weightData.byteLength;
      const json = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [TFJS_WEIGHTS_FILE], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, TFJS_MODEL_FILE), JSON.stringify(json));
      await writeFile(join(dir, TFJS_WEIGHTS_FILE), Buffer.from(weightData));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weightsBytes } };
    }),
  );
  return { modelJson: join(dir, TFJS_MODEL_FILE), weightsBytes };
}

/** Load `model.json` (a path to the file or its folder) and the weight files it lists. */
export async function loadLayersModel(tf: Tf, path: string): Promise<tfTypes.LayersModel> {
  const file = path.endsWith('.json') ? path : join(path, TFJS_MODEL_FILE);
  let json: { modelTopology: object; weightsManifest: { paths: string[]; weights: tfTypes.io.WeightsManifestEntry[] }[] };
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`TF.js model ${file}: cannot read (${(err as Error).message}); pass --model with a folder holding model.json from \`crystalwatch train\``);
  }
  const weightSpecs: tfTypes.io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of json.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) buffers.push(await readFile(join(dirname(file), p)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
}
