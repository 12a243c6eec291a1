/**
 * The main-thread side of the inference worker: an InferenceBackend whose `run()` posts the
 * batch tensor (transferred, not copied) to the worker and resolves with its answer.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendInit, BackendOutput, InferenceBackend } from './backends/index.js';
import type { FeatureMap, FeatureMapSupport } from './backends/types.js';
import type { ImageSpec, WholeOutcome } from './image-prep.js';

export type WorkerRequest =
  | { type: 'run'; id: number; tensor: Float32Array; n: number }
  | { type: 'features'; id: number; tensor: Float32Array; n: number; width: number; height: number }
  | { type: 'prepare'; id: number; packed: PackedBytes; spec: ImageSpec }
  | { type: 'close' };
type ReadyInfo = { name: string; device: string; fixedBatch?: number; featureMap?: FeatureMapSupport };
export type WorkerReply =
  | ({ type: 'ready' } & ReadyInfo)
  | { type: 'failed'; message: string }
  | { type: 'log'; message: string }
  | { type: 'result'; id: number; pPG: Float32Array; embedding?: Float32Array; embeddingDim?: number }
  | { type: 'features'; id: number; data: Float32Array; dims: FeatureMap['dims'] }
  | { type: 'prepared'; id: number; outcomes: PackedOutcome[]; pixels: PackedBytes }
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

type Answer = BackendOutput | FeatureMap | WholeOutcome[];

/**
 * Byte strings in one ArrayBuffer of their own, transferred to the other thread: posting a
 * Buffer copies its whole backing store, and a Kafka record's value is a view into a fetch
 * response of up to 64 MiB.
 */
export interface PackedBytes {
  data: ArrayBuffer;
  /** `offsets[i]`…`offsets[i + 1]` is item i. */
  offsets: number[];
}

export function packBytes(items: Uint8Array[]): PackedBytes {
  const offsets = [0];
  for (const item of items) offsets.push(offsets[offsets.length - 1]! + item.byteLength);
  const data = new ArrayBuffer(offsets[offsets.length - 1]!);
  const view = new Uint8Array(data);
  items.forEach((item, i) => view.set(item, offsets[i]));
  return { data, offsets };
}

/** Buffer views of the packed items (no copy). */
export function unpackBytes(packed: PackedBytes): Buffer[] {
  return packed.offsets.slice(1).map((end, i) => Buffer.from(packed.data, packed.offsets[i]!, end - packed.offsets[i]!));
}

/** A WholeOutcome as posted back: a ready image's pixels are item `pixels` of the reply's packed pixels. */
export type PackedOutcome = Exclude<WholeOutcome, { kind: 'ready' }> | { kind: 'ready'; width: number; height: number; pixels: number };

interface Running {
  worker: Worker;
  exited: boolean;
  /** Requests in flight by id: a `run` resolves with a BackendOutput, a `features` with a FeatureMap, a `prepare` with outcomes. */
  pending: Map<number, { resolve: (o: Answer) => void; reject: (e: Error) => void }>;
}

/** Start one worker and wait for its backend to be ready. */
async function spawnWorker(init: BackendInit, log: (msg: string) => void): Promise<{ running: Running; info: ReadyInfo }> {
  const worker = new Worker(workerPath(), { workerData: init });
  const running: Running = { worker, exited: false, pending: new Map() };
  const failAll = (err: Error) => {
    for (const p of running.pending.values()) p.reject(err);
    running.pending.clear();
  };
  const ready = new Promise<ReadyInfo>((resolve, reject) => {
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
          const p = running.pending.get(reply.id);
          running.pending.delete(reply.id);
          p?.resolve({ pPG: reply.pPG, embedding: reply.embedding, embeddingDim: reply.embeddingDim });
          break;
        }
        case 'features': {
          const p = running.pending.get(reply.id);
          running.pending.delete(reply.id);
          p?.resolve({ data: reply.data, dims: reply.dims });
          break;
        }
        case 'prepared': {
          const p = running.pending.get(reply.id);
          running.pending.delete(reply.id);
          const pixels = unpackBytes(reply.pixels);
          p?.resolve(reply.outcomes.map((o) => (o.kind === 'ready' ? { ...o, pixels: pixels[o.pixels]! } : o)));
          break;
        }
        case 'error': {
          const p = running.pending.get(reply.id);
          running.pending.delete(reply.id);
          p?.reject(new Error(reply.message));
          break;
        }
        case 'closed':
          break;
      }
    });
    worker.on('error', (err) => {
      reject(err);
      failAll(err);
    });
    worker.on('exit', (code) => {
      running.exited = true;
      const err = new Error(`classify worker exited (code ${code})`);
      reject(err);
      failAll(err);
    });
  });
  try {
    return { running, info: await ready };
  } catch (err) {
    await worker.terminate();
    throw err;
  }
}

/**
 * An InferenceBackend on a worker thread. A worker that dies (an engine crash that did not take
 * the process with it) fails the batches it held and is started again on the next run, so the
 * stage's retry of those batches finds a working engine.
 */
export async function startWorkerBackend(init: BackendInit, log: (msg: string) => void = () => {}): Promise<InferenceBackend> {
  const first = await spawnWorker(init, log);
  let running = first.running;
  let restarting: Promise<void> | undefined;
  let nextId = 1;
  let closing: Promise<void> | undefined;
  const info = first.info;

  const ensureRunning = async (): Promise<Running> => {
    if (!running.exited) return running;
    restarting ??= (async () => {
      log('classify worker died; starting a new one');
      running = (await spawnWorker(init, log)).running;
    })().finally(() => {
      restarting = undefined;
    });
    await restarting;
    return running;
  };

  /** Post one request (its tensor or packed images transferred, not copied) and wait for the answer with its id. */
  const request = async (message: Extract<WorkerRequest, { id: number }>): Promise<Answer> => {
    if (closing) throw new Error('classify worker is closed');
    const current = await ensureRunning();
    return new Promise((resolve, reject) => {
      current.pending.set(message.id, { resolve, reject });
      current.worker.postMessage(message, [('tensor' in message ? message.tensor.buffer : message.packed.data) as ArrayBuffer]);
    });
  };

  return {
    name: info.name,
    device: info.device,
    fixedBatch: info.fixedBatch,
    featureMap: info.featureMap,
    async run(tensor: Float32Array, n: number): Promise<BackendOutput> {
      return (await request({ type: 'run', id: nextId++, tensor, n })) as BackendOutput;
    },
    async runFeatureMap(tensor: Float32Array, n: number, width: number, height: number): Promise<FeatureMap> {
      return (await request({ type: 'features', id: nextId++, tensor, n, width, height })) as FeatureMap;
    },
    async prepareWhole(images: Buffer[], spec: ImageSpec): Promise<WholeOutcome[]> {
      return (await request({ type: 'prepare', id: nextId++, packed: packBytes(images), spec })) as WholeOutcome[];
    },
    /** Test hook and last resort: stop the worker as a crash would. */
    async kill(): Promise<void> {
      await running.worker.terminate();
    },
    close(): Promise<void> {
      closing ??= (async () => {
        await restarting?.catch(() => {});
        const current = running;
        if (current.exited) return;
        const exit = new Promise<void>((resolve) => current.worker.once('exit', () => resolve()));
        current.worker.postMessage({ type: 'close' } satisfies WorkerRequest);
        // A backend stuck in native code never answers: do not wait on it forever.
        const timer = setTimeout(() => void current.worker.terminate(), 5_000);
        await exit;
        clearTimeout(timer);
      })();
      return closing;
    },
  } as InferenceBackend & { kill(): Promise<void> };
}
