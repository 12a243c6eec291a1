/**
 * The main-thread side of the inference worker: an InferenceBackend whose `run()` posts the
 * batch tensor (transferred, not copied) to the worker and resolves with its answer.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendInit, BackendOutput, InferenceBackend } from './backends/index.js';

export type WorkerRequest = { type: 'run'; id: number; tensor: Float32Array; n: number } | { type: 'close' };
export type WorkerReply =
  | { type: 'ready'; name: string; device: string; fixedBatch?: number }
  | { type: 'failed'; message: string }
  | { type: 'log'; message: string }
  | { type: 'result'; id: number; pPG: Float32Array; embedding?: Float32Array; embeddingDim?: number }
  | { type: 'error'; id: number; message: string }
  | { type: 'closed' };

/**
 * The compiled worker. From dist/ it sits next to this file; under vitest this file is the TS
 * source and Node cannot start a .ts worker, so the compiled copy in dist/ is used (the test
 * script builds first).
 */
export function workerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const sibling = join(here, 'worker.js');
  if (existsSync(sibling)) return sibling;
  let dir = here;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'dist', 'src', 'classify', 'worker.js');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`classify worker: cannot find the compiled worker.js next to ${here} or in dist/src/classify; run \`npm run build\` first`);
}

export async function startWorkerBackend(init: BackendInit, log: (msg: string) => void = () => {}): Promise<InferenceBackend> {
  const worker = new Worker(workerPath(), { workerData: init });
  const pending = new Map<number, { resolve: (o: BackendOutput) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let exited = false;
  let closing: Promise<void> | undefined;

  const ready = new Promise<{ name: string; device: string; fixedBatch?: number }>((resolve, reject) => {
    worker.on('message', (reply: WorkerReply) => {
      switch (reply.type) {
        case 'log':
          log(reply.message);
          break;
        case 'ready':
          resolve(reply);
          break;
        case 'failed':
          reject(new Error(reply.message));
          break;
        case 'result': {
          const p = pending.get(reply.id);
          pending.delete(reply.id);
          p?.resolve({ pPG: reply.pPG, embedding: reply.embedding, embeddingDim: reply.embeddingDim });
          break;
        }
        case 'error': {
          const p = pending.get(reply.id);
          pending.delete(reply.id);
          p?.reject(new Error(reply.message));
          break;
        }
        case 'closed':
          break;
      }
    });
    worker.on('error', (err) => {
      reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    });
    worker.on('exit', (code) => {
      exited = true;
      const err = new Error(`classify worker exited (code ${code})`);
      reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    });
  });

  let info: { name: string; device: string; fixedBatch?: number };
  try {
    info = await ready;
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return {
    name: info.name,
    device: info.device,
    fixedBatch: info.fixedBatch,
    run(tensor: Float32Array, n: number): Promise<BackendOutput> {
      if (exited || closing) return Promise.reject(new Error('classify worker is closed'));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type: 'run', id, tensor, n } satisfies WorkerRequest, [tensor.buffer as ArrayBuffer]);
      });
    },
    close(): Promise<void> {
      closing ??= (async () => {
        if (exited) return;
        const exit = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.postMessage({ type: 'close' } satisfies WorkerRequest);
        // A backend stuck in native code never answers: do not wait on it forever.
        const timer = setTimeout(() => void worker.terminate(), 5_000);
        await exit;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
