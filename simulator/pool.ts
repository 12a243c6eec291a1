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
  /** Jobs sent to this worker and not answered yet. */
  jobs: Set<number>;
}

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export class RenderPool {
  private slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Worker threads started (0 = rendering in-thread). */
  readonly threads: number;

  /** `workers` 0 = render in-thread. */
  constructor(workers: number = defaultWorkerCount()) {
    const url = new URL('./render-worker.js', import.meta.url);
    const usable = workers > 0 && url.protocol === 'file:' && existsSync(fileURLToPath(url));
    this.threads = usable ? workers : 0;
    for (let i = 0; i < this.threads; i++) {
      const slot: Slot = { worker: new Worker(url), jobs: new Set() };
      // Do not keep the process alive for idle workers; close() terminates them.
      slot.worker.unref();
      slot.worker.on('message', (reply: RenderReply) => this.settle(slot, reply));
      slot.worker.on('error', (err) => this.retire(slot, err));
      slot.worker.on('exit', (code) => this.retire(slot, new Error(`exited with code ${code}`)));
      this.slots.push(slot);
    }
  }

  private settle(slot: Slot, reply: RenderReply): void {
    slot.jobs.delete(reply.id);
    if (slot.jobs.size === 0) slot.worker.unref();
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.ok) p.resolve({ png: Buffer.from(reply.png.buffer, reply.png.byteOffset, reply.png.byteLength), result: reply.result });
    else p.reject(new Error(reply.error));
  }

  /** A worker that failed or exited takes no more jobs; its open jobs fail, later ones go elsewhere. */
  private retire(slot: Slot, err: Error): void {
    if (!this.slots.includes(slot)) return;
    this.slots = this.slots.filter((s) => s !== slot);
    for (const id of slot.jobs) {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (!this.closed) p?.reject(new Error(`simulator render worker failed: ${err.message}`));
    }
    slot.jobs.clear();
  }

  private submit(job: Omit<RenderJob, 'id'>): Promise<{ png: Buffer; result: unknown }> {
    const slot = this.slots.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.nextId++;
    slot.jobs.add(id);
    slot.worker.ref();
    return new Promise<{ png: Buffer; result: unknown }>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ ...job, id } as RenderJob);
    });
  }

  /** Whether jobs go to workers (else they render on this thread, e.g. after workers died). */
  private get useWorkers(): boolean {
    return this.slots.length > 0;
  }

  async crop(options: CropOptions): Promise<Crop> {
    if (this.closed) throw new Error('RenderPool: used after close(); create a new pool');
    if (!this.useWorkers) return renderCrop(options);
    const { png, result } = await this.submit({ kind: 'crop', options });
    return { png, ...(result as Omit<Crop, 'png'>) };
  }

  async frame(options: FrameOptions): Promise<{ png: Buffer; truth: FrameTruth }> {
    if (this.closed) throw new Error('RenderPool: used after close(); create a new pool');
    if (!this.useWorkers) return renderFrame(options);
    const { capturedAt, ...rest } = options;
    const { png, result } = await this.submit({ kind: 'frame', options: { ...rest, ...(capturedAt ? { capturedAtMs: capturedAt.getTime() } : {}) } });
    return { png, truth: result as FrameTruth };
  }

  /** Terminates the workers; jobs still open are rejected. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new Error('RenderPool: closed before the job finished'));
    this.pending.clear();
    const slots = this.slots;
    this.slots = [];
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
