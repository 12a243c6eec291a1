/**
 * A camera that drops frames into a folder at a steady rate, the way the probe's acquisition
 * software does: `<camera>-<yyyyMMddTHHmmssSSS>-<index>.png` plus a `.json` sidecar with the
 * ground truth. The sidecar is written (atomically) before the image, because ingest reads it
 * when the image completes. Images are written atomically (temp file + rename) or slowly in
 * chunks, as a camera writing over SMB does, and optionally some are damaged on purpose.
 */
import { open, mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FRAME } from './physics.js';
import { Rng, mixSeed } from './random.js';
import type { FrameTruth } from './frame.js';
import { RenderPool } from './pool.js';
import { frameFileName, writeAtomic } from './frame-files.js';

export { frameFileName, frameTimestamp, writeAtomic } from './frame-files.js';

export interface FrameCameraOptions {
  out: string;
  camera?: string;
  fps?: number;
  /** Seconds of batch to film; undefined = until close(). */
  durationS?: number;
  width?: number;
  height?: number;
  pgOnsetS?: number | null;
  seed?: number;
  write?: 'atomic' | 'slow';
  /** Fraction of image files to damage (truncated or corrupted), 0..1. */
  faults?: number;
  /** Capture time of frame 0; frame i is `startAt + i / fps`. Default: now. */
  startAt?: Date;
  /**
   * Pace frames in real time (default). false renders back to back as fast as possible, with
   * capture times still `startAt + i / fps` (for datasets and benchmarks).
   */
  realTime?: boolean;
  /**
   * Worker threads that render frames (0 = on the calling thread). Default 1, or 2 above 5 fps:
   * drawing a 1280×960 frame takes tens of milliseconds of CPU that would otherwise block the
   * event loop of whatever else runs in the process (the demo's broker and pipeline).
   */
  workers?: number;
  onFrame?: (path: string, truth: FrameTruth) => void;
  /** Called with each frame that could not be written; the camera goes on. Default: ignore. */
  onError?: (err: Error) => void;
}

const sleep = (ms: number, signal: { cancelled: boolean; wake?: () => void }): Promise<void> =>
  new Promise((resolve) => {
    if (signal.cancelled || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.wake = undefined;
      resolve();
    }
    signal.wake = done;
  });

/** Damage a PNG the way a failing link does: cut it short, or garble its image data. */
function damage(png: Buffer, rng: Rng): { bytes: Buffer; fault: 'truncated' | 'corrupt' } {
  if (rng.chance(0.5)) {
    return { bytes: png.subarray(0, Math.max(8, Math.floor(png.length * rng.uniform(0.2, 0.9)))), fault: 'truncated' };
  }
  // Keep the signature, IHDR and IEND so the file looks complete, but overwrite IDAT bytes:
  // the zlib stream (and the CRC) no longer check out.
  const bytes = Buffer.from(png);
  const start = 64;
  const end = Math.max(start + 1, bytes.length - 32);
  for (let i = 0; i < 64; i++) bytes[start + Math.floor(rng.next() * (end - start))]! ^= 0xff;
  return { bytes, fault: 'corrupt' };
}

export class FrameCamera {
  private readonly o: Required<Pick<FrameCameraOptions, 'camera' | 'fps' | 'width' | 'height' | 'seed' | 'write' | 'faults' | 'realTime'>> & FrameCameraOptions;
  private written = 0;
  private started = false;
  private closed = false;
  private readonly signal: { cancelled: boolean; wake?: () => void } = { cancelled: false };
  private loop: Promise<void> | null = null;
  private finish!: () => void;
  private fail!: (err: Error) => void;
  private readonly finished: Promise<void>;

  constructor(o: FrameCameraOptions) {
    const fps = o.fps ?? FRAME.fps;
    if (!(fps > 0 && fps <= 1000)) throw new Error(`FrameCamera: fps must be in (0, 1000], got ${o.fps}`);
    if (o.durationS !== undefined && !(o.durationS >= 0))
      throw new Error(`FrameCamera: durationS must be ≥ 0 seconds or undefined (run until close), got ${o.durationS}`);
    const faults = o.faults ?? 0;
    if (!(faults >= 0 && faults <= 1)) throw new Error(`FrameCamera: faults is a fraction of frames in 0..1, got ${o.faults}`);
    const write = o.write ?? 'atomic';
    if (write !== 'atomic' && write !== 'slow') throw new Error(`FrameCamera: write must be "atomic" or "slow", got "${String(o.write)}"`);
    const camera = o.camera ?? 'cam-1';
    if (!/^[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*$/.test(camera) || /^\d{8}T/.test(camera)) {
      throw new Error(`FrameCamera: camera id must be letters, digits, "_", "." and single "-", got "${camera}"`);
    }
    this.o = {
      ...o,
      camera,
      fps,
      width: o.width ?? FRAME.widthPx,
      height: o.height ?? FRAME.heightPx,
      seed: o.seed ?? 0,
      write,
      faults,
      realTime: o.realTime ?? true,
    };
    this.finished = new Promise<void>((resolve, reject) => {
      this.finish = resolve;
      this.fail = reject;
    });
    // done() may never be awaited (camera run until close): do not report an unhandled rejection.
    this.finished.catch(() => undefined);
  }

  get framesWritten(): number {
    return this.written;
  }

  /** Total frames this camera will write (Infinity when it runs until close()). */
  get frameCount(): number {
    return this.o.durationS === undefined ? Infinity : Math.ceil(this.o.durationS * this.o.fps - 1e-9);
  }

  async start(): Promise<void> {
    if (this.started) return;
    if (this.closed) throw new Error('FrameCamera: start() after close(); create a new camera');
    this.started = true;
    await mkdir(this.o.out, { recursive: true });
    this.loop = this.run().then(
      () => this.finish(),
      (err: Error) => this.fail(err),
    );
  }

  /** Resolves when the last frame of `durationS` is written (or the camera is closed). */
  done(): Promise<void> {
    return this.finished;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.signal.cancelled = true;
    this.signal.wake?.();
    if (this.loop) await this.loop;
    else this.finish();
  }

  private async run(): Promise<void> {
    const { fps, camera, seed } = this.o;
    const startAt = this.o.startAt ?? new Date();
    const t0 = performance.now();
    const pool = new RenderPool(this.o.workers ?? (fps > 5 ? 2 : 1));
    // Frames rendered ahead (one per worker) while the current one waits for its time.
    const lookahead = Math.max(1, pool.threads);
    const queue: Promise<{ png: Buffer; truth: FrameTruth }>[] = [];
    const render = (i: number): Promise<{ png: Buffer; truth: FrameTruth }> =>
      pool.frame({
        seed,
        frameIndex: i,
        tSeconds: i / fps,
        pgOnsetS: this.o.pgOnsetS ?? null,
        width: this.o.width,
        height: this.o.height,
        camera,
        capturedAt: new Date(startAt.getTime() + Math.round((i * 1000) / fps)),
      });
    let queued = 0;
    const fill = (): void => {
      while (queue.length < lookahead + 1 && queued < this.frameCount) {
        const p = render(queued++);
        p.catch(() => undefined);
        queue.push(p);
      }
    };
    try {
      for (let i = 0; i < this.frameCount && !this.signal.cancelled; i++) {
        fill();
        const frame = await queue.shift()!;
        fill();
        if (this.o.realTime) await sleep(t0 + (i * 1000) / fps - performance.now(), this.signal);
        if (this.signal.cancelled) break;
        try {
          await this.writeFrame(i, frame.png, frame.truth);
        } catch (err) {
          this.o.onError?.(err as Error);
        }
      }
    } finally {
      await Promise.allSettled(queue);
      await pool.close();
    }
  }

  private async writeFrame(i: number, png: Buffer, truth: FrameTruth): Promise<void> {
    const dir = this.o.out;
    const name = frameFileName(this.o.camera, new Date(truth.capturedAt), i);
    const rng = new Rng(mixSeed(this.o.seed, 0xfa017, i));
    let bytes = png;
    if (this.o.faults > 0 && rng.chance(this.o.faults)) {
      const damaged = damage(png, rng);
      bytes = damaged.bytes;
      truth = { ...truth, fault: damaged.fault };
    }
    await writeAtomic(dir, `${name.slice(0, -4)}.json`, `${JSON.stringify(truth)}\n`);
    if (this.o.write === 'atomic') await writeAtomic(dir, name, bytes);
    else await this.writeSlowly(join(dir, name), bytes, rng);
    this.written++;
    this.o.onFrame?.(join(dir, name), truth);
  }

  /** Write in place in 4–12 chunks over 100–300 ms; on close(), the rest goes at once. */
  private async writeSlowly(path: string, bytes: Buffer, rng: Rng): Promise<void> {
    const chunks = rng.int(4, 12);
    const pauseMs = rng.uniform(100, 300) / chunks;
    const handle = await open(path, 'w');
    try {
      for (let c = 0; c < chunks; c++) {
        const from = Math.floor((bytes.length * c) / chunks);
        const to = Math.floor((bytes.length * (c + 1)) / chunks);
        await handle.write(bytes, from, to - from, from);
        if (c + 1 < chunks && !this.signal.cancelled) await new Promise((r) => setTimeout(r, pauseMs));
      }
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw err;
    }
    await handle.close();
  }
}
