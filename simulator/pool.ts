/**
 * A small pool of worker threads that render crops and frames. Rendering is a pure function of
 * its options, so results are byte-identical to rendering in-thread; the pool only adds cores.
 *
 * Workers need the compiled worker module (dist/simulator/render-worker.js). Where it is not
 * there (running from TypeScript sources, e.g. under vitest) the pool renders in-thread.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { renderCrop, type Crop, type CropOptions } from './crop.js';
import { renderFrame, type FrameOptions, type FrameTruth } from './frame.js';
import type { RenderJob, RenderReply } from './render-worker.js';

interface Pending {
  resolve: (reply: { png: Buffer; result: unknown }) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export class RenderPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  readonly threads: number;

  /** `workers` 0 = render in-thread. */
  constructor(workers: number = defaultWorkerCount()) {
    const url = new URL('./render-worker.js', import.meta.url);
    const usable = workers > 0 && url.protocol === 'file:' && existsSync(fileURLToPath(url));
    this.threads = usable ? workers : 0;
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(url);
      // Do not keep the process alive for idle workers; close() terminates them.
      worker.unref();
      worker.on('message', (reply: RenderReply) => this.settle(reply));
      worker.on('error', (err) => this.failAll(err));
      this.slots.push({ worker, busy: 0 });
    }
  }

  private settle(reply: RenderReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.ok) p.resolve({ png: Buffer.from(reply.png.buffer, reply.png.byteOffset, reply.png.byteLength), result: reply.result });
    else p.reject(new Error(reply.error));
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(new Error(`simulator render worker failed: ${err.message}`));
    this.pending.clear();
  }

  private submit(job: Omit<RenderJob, 'id'>): Promise<{ png: Buffer; result: unknown }> {
    if (this.closed) return Promise.reject(new Error('RenderPool: used after close()'));
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    slot.busy++;
    slot.worker.ref();
    return new Promise<{ png: Buffer; result: unknown }>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ ...job, id } as RenderJob);
    }).finally(() => {
      slot.busy--;
      if (slot.busy === 0) slot.worker.unref();
    });
  }

  async crop(options: CropOptions): Promise<Crop> {
    if (this.threads === 0) return renderCrop(options);
    const { png, result } = await this.submit({ kind: 'crop', options });
    return { png, ...(result as Omit<Crop, 'png'>) };
  }

  async frame(options: FrameOptions): Promise<{ png: Buffer; truth: FrameTruth }> {
    if (this.threads === 0) return renderFrame(options);
    const { capturedAt, ...rest } = options;
    const { png, result } = await this.submit({ kind: 'frame', options: { ...rest, ...(capturedAt ? { capturedAtMs: capturedAt.getTime() } : {}) } });
    return { png, truth: result as FrameTruth };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
