/**
 * TF.js on the best backend this machine has, chosen at run time: tfjs-node-gpu (CUDA),
 * then tfjs-node (native TensorFlow on the CPU), then the WebAssembly backend with SIMD and
 * our training kernels, then the plain JS CPU backend (about 70× slower than wasm here).
 * The native packages are optional dependencies that do not install everywhere, so they are
 * found with a dynamic import and never imported statically.
 */
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

export type Tf = typeof tf;
export type TfBackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface TfRuntime {
  tf: Tf;
  /** Which package runs the maths, as reported in logs and the model card. */
  backend: TfBackendName;
  /** `gpu` or `cpu`. */
  device: 'gpu' | 'cpu';
  /** What was tried and why it was not used, for `--verbose` and the report. */
  skipped: string[];
}

let runtime: Promise<TfRuntime> | undefined;

async function tryImport(name: string): Promise<unknown> {
  // A variable specifier keeps TypeScript from resolving packages that are not installed.
  const specifier: string = name;
  // A package installed without its native addon still registers hundreds of kernels before it
  // fails, each with a console warning; keep those out of the user's terminal.
  const { warn, log } = console;
  console.warn = () => {};
  console.log = () => {};
  try {
    return await import(specifier);
  } finally {
    console.warn = warn;
    console.log = log;
  }
}

/**
 * Pick and initialise the backend once per process. `prefer` forces one (tests and the bench
 * compare backends); otherwise the best available wins.
 */
export function loadTf(prefer?: TfBackendName): Promise<TfRuntime> {
  if (prefer !== undefined) return initBackend([prefer]);
  runtime ??= initBackend(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
  return runtime;
}

async function initBackend(order: TfBackendName[]): Promise<TfRuntime> {
  const skipped: string[] = [];
  for (const name of order) {
    try {
      if (name === 'tensorflow-gpu' || name === 'tensorflow') {
        // tfjs-node(-gpu) registers the `tensorflow` backend with tfjs-core on import.
        await tryImport(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
        if (!(await tf.setBackend('tensorflow'))) throw new Error('backend did not initialise');
        return { tf, backend: name, device: name === 'tensorflow-gpu' ? 'gpu' : 'cpu', skipped };
      }
      if (name === 'wasm') {
        await import('@tensorflow/tfjs-backend-wasm');
        registerWasmTrainingKernels(tf);
        if (!(await tf.setBackend('wasm'))) throw new Error('backend did not initialise');
        return { tf, backend: 'wasm', device: 'cpu', skipped };
      }
      if (!(await tf.setBackend('cpu'))) throw new Error('backend did not initialise');
      return { tf, backend: 'cpu', device: 'cpu', skipped };
    } catch (err) {
      const message = (err as Error).message.split('\n')[0]!;
      skipped.push(
        `${name}: ${/Cannot find (package|module)/.test(message) ? 'not installed' : /tfjs_binding\.node/.test(message) ? 'installed without its native addon' : message}`,
      );
    }
  }
  throw new Error(`no TF.js backend could start (${skipped.join('; ')}); reinstall node_modules (npm ci)`);
}
