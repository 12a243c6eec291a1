/**
 * A complete model folder (card.json + model.onnx [+ tfjs/model.json]) around a tiny model,
 * for tests and the bench. Generated, never committed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelCardInput } from '../model/card.js';
import { buildTinyOnnxModel, type TinyModelSpec } from './onnx-graph.js';
import { writeTinyTfjsModel } from './tiny-tfjs.js';

export async function writeTinyModelDir(
  dir: string,
  spec: TinyModelSpec,
  card: Partial<ModelCardInput> & Pick<ModelCardInput, 'input'>,
  options: { tfjs?: boolean } = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), buildTinyOnnxModel(spec));
  const withTfjs = options.tfjs ?? spec.layout === 'NHWC';
  if (withTfjs) await writeTinyTfjsModel(join(dir, 'tfjs'), spec);
  const full: ModelCardInput = {
    name: 'tiny',
    version: '0.0.1',
    format: 'onnx',
    file: 'model.onnx',
    ...(withTfjs ? { files: { onnx: 'model.onnx', tfjs: 'tfjs/model.json' } } : {}),
    output: { kind: spec.kind, ...(spec.kind === 'softmax' ? { pgIndex: 1 } : {}), ...(spec.embeddingName ? { embeddingName: spec.embeddingName } : {}) },
    classNames: ['cex', 'pg'],
    ...card,
  };
  await writeFile(join(dir, 'card.json'), JSON.stringify(full, null, 2));
  return dir;
}
