/**
 * The inference thread. onnxruntime-node's `run()` and TF.js's CPU kernels block the thread
 * they run on; here they block this one, and the main thread keeps fetching, heartbeating and
 * decoding. Messages: see WorkerRequest / WorkerReply in worker-client.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openBackend, type BackendInit, type InferenceBackend } from './backends/index.js';
import { packBytes, unpackBytes, type PackedOutcome, type WorkerReply, type WorkerRequest } from './worker-client.js';
import { prepareWhole } from './image-prep.js';

const port = parentPort;
if (!port) throw new Error('classify worker: must run as a worker thread (new Worker), not as a script');
const post = (reply: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

let backend: InferenceBackend | undefined;
try {
  backend = await openBackend(workerData as BackendInit, (message) => post({ type: 'log', message }));
  post({ type: 'ready', name: backend.name, device: backend.device, fixedBatch: backend.fixedBatch, featureMap: backend.featureMap });
} catch (err) {
  post({ type: 'failed', message: (err as Error).message });
}

/** Answers one request: a failed run answers `error` with its id, `close` answers `closed`. */
const answer = async (request: WorkerRequest): Promise<void> => {
  if (request.type === 'close') {
    await backend?.close().catch(() => {});
    post({ type: 'closed' });
    port.close();
    return;
  }
  if (request.type === 'prepare') {
    try {
      const outcomes = await Promise.all(unpackBytes(request.packed).map((bytes) => prepareWhole(bytes, request.spec)));
      // The ready images' pixels go back in one transferred buffer, each outcome naming its item.
      const ready: Uint8Array[] = [];
      const packed: PackedOutcome[] = outcomes.map((o) => (o.kind === 'ready' ? { ...o, pixels: ready.push(o.pixels) - 1 } : o));
      const pixels = packBytes(ready);
      post({ type: 'prepared', id: request.id, outcomes: packed, pixels }, [pixels.data]);
    } catch (err) {
      post({ type: 'error', id: request.id, message: (err as Error).message });
    }
    return;
  }
  if (!backend) {
    post({ type: 'error', id: request.id, message: 'classify worker: no backend (it failed to start)' });
    return;
  }
  try {
    if (request.type === 'features') {
      if (!backend.runFeatureMap) throw new Error(`classify worker: the ${backend.name} backend has no feature-map inference`);
      const map = await backend.runFeatureMap(request.tensor, request.n, request.width, request.height);
      post({ type: 'features', id: request.id, data: map.data, dims: map.dims }, [map.data.buffer as ArrayBuffer]);
      return;
    }
    const out = await backend.run(request.tensor, request.n);
    const transfer: ArrayBuffer[] = [out.pPG.buffer as ArrayBuffer];
    if (out.embedding) transfer.push(out.embedding.buffer as ArrayBuffer);
    post({ type: 'result', id: request.id, pPG: out.pPG, embedding: out.embedding, embeddingDim: out.embeddingDim }, transfer);
  } catch (err) {
    post({ type: 'error', id: request.id, message: (err as Error).message });
  }
};

port.on('message', (request: WorkerRequest) => {
  answer(request).catch((err: unknown) =>
    post({ type: 'log', message: `classify worker: answering a ${request.type} request failed: ${(err as Error).message}` }),
  );
});
