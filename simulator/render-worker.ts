/**
 * Worker thread body for RenderPool: renders crops and frames off the main thread, so both
 * cores draw (Skia drawing is synchronous on the thread that calls it).
 */
import { parentPort } from 'node:worker_threads';
import { renderCrop, type CropOptions } from './crop.js';
import { renderFrame, type FrameOptions } from './frame.js';

export type RenderJob =
  { id: number; kind: 'crop'; options: CropOptions } | { id: number; kind: 'frame'; options: Omit<FrameOptions, 'capturedAt'> & { capturedAtMs?: number } };

export type RenderReply = { id: number; ok: true; png: Uint8Array; result: unknown } | { id: number; ok: false; error: string };

// render() answers every job itself, a failed one with ok: false, so nothing is left to catch.
parentPort?.on('message', (job: RenderJob) => void render(job));

async function render(job: RenderJob): Promise<void> {
  try {
    if (job.kind === 'crop') {
      const crop = await renderCrop(job.options);
      const png = new Uint8Array(crop.png);
      parentPort!.postMessage({ id: job.id, ok: true, png, result: { width: crop.width, height: crop.height, label: crop.label } } satisfies RenderReply, [
        png.buffer,
      ]);
    } else {
      const { capturedAtMs, ...rest } = job.options;
      const frame = await renderFrame({ ...rest, ...(capturedAtMs !== undefined ? { capturedAt: new Date(capturedAtMs) } : {}) });
      const png = new Uint8Array(frame.png);
      parentPort!.postMessage({ id: job.id, ok: true, png, result: frame.truth } satisfies RenderReply, [png.buffer]);
    }
  } catch (err) {
    parentPort!.postMessage({ id: job.id, ok: false, error: (err as Error).message } satisfies RenderReply);
  }
}
