import { createOnnxBackend } from './onnx.js';
import { createTfjsBackend } from './tfjs.js';
import type { BackendInit, InferenceBackend } from './types.js';

export type { BackendInit, BackendOutput, BackendChoice, InferenceBackend } from './types.js';

/**
 * Open the engine the caller asked for. `auto` prefers onnxruntime when the card ships an ONNX
 * file (fastest on CPU, and the TensorRT/CUDA path on GPU), TF.js otherwise.
 */
export async function openBackend(init: BackendInit, log: (msg: string) => void = () => {}): Promise<InferenceBackend> {
  const { card } = init;
  const hasOnnx = card.format === 'onnx' || card.files?.onnx !== undefined;
  const choice = init.backend === 'auto' ? (hasOnnx ? 'onnx' : 'tfjs') : init.backend;
  return choice === 'onnx' ? createOnnxBackend(init, log) : createTfjsBackend(init, log);
}
