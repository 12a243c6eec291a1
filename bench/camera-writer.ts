/**
 * Camera software for the benchmarks (ingest-bytes.ts, e2e.ts), in a child process of its own so
 * the CPU it spends writing files is not counted as crystalwatch's: in a plant the camera's
 * software runs elsewhere. Each camera writes, at a steady rate, a sidecar and then the frame,
 * each as a temporary file renamed into place, named as the simulator's camera names them,
 * replaying frames rendered before the clock starts. A camera with an `onsetS` replays the
 * `pg` pool from that second of its run on.
 *
 *   node dist/bench/camera-writer.js '<json: WriterPlan>'
 *
 * Prints `{"written": N, "failures": F, "lastError"?: "…"}` on stdout when done (a failed write is
 * counted, not fatal: the run goes on, and the bench reports it).
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { frameFileName, writeAtomic } from '../simulator/frame-files.js';

export interface ReplayFrame {
  /** A PNG file to replay. */
  path: string;
  /** Sidecar fields (the simulator's truth); `camera`, `capturedAt` and `frameIndex` are set per write. */
  truth: Record<string, unknown>;
}

export interface WriterPlan {
  cameras: Array<{ id: string; dir: string; onsetS?: number | null }>;
  cex: ReplayFrame[];
  /** Replayed from a camera's `onsetS` on (default: `cex`). */
  pg?: ReplayFrame[];
  fps: number;
  seconds: number;
}

export interface WriterResult {
  written: number;
  failures: number;
  lastError?: string;
}

async function run(plan: WriterPlan): Promise<WriterResult> {
  const load = (frames: ReplayFrame[]) => frames.map((f) => ({ png: readFileSync(f.path), truth: f.truth }));
  const cex = load(plan.cex);
  const pg = plan.pg ? load(plan.pg) : cex;
  const count = Math.round(plan.fps * plan.seconds);
  const intervalMs = 1000 / plan.fps;
  const started = performance.now();
  const result: WriterResult = { written: 0, failures: 0 };

  async function camera(index: number, camera: WriterPlan['cameras'][number]): Promise<void> {
    // Cameras are spread over one frame interval, as independent cameras would be.
    const offset = (index * intervalMs) / plan.cameras.length;
    for (let i = 0; i < count; i += 1) {
      const due = offset + i * intervalMs;
      const wait = started + due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const onset = camera.onsetS ?? null;
      const pool = onset !== null && due / 1000 >= onset ? pg : cex;
      const source = pool[(i + index) % pool.length]!;
      const capturedAt = new Date();
      const name = frameFileName(camera.id, capturedAt, i);
      const sidecar = { ...source.truth, camera: camera.id, capturedAt: capturedAt.toISOString(), frameIndex: i };
      try {
        // Sidecar first, so ingest finds the truth when the image completes (as the simulator's camera does).
        await writeAtomic(camera.dir, name.replace(/\.png$/, '.json'), JSON.stringify(sidecar));
        await writeAtomic(camera.dir, name, source.png);
        result.written += 1;
      } catch (err) {
        result.failures += 1;
        result.lastError = (err as Error).message;
      }
    }
  }

  await Promise.all(plan.cameras.map((c, i) => camera(i, c)));
  return result;
}

/**
 * The cameras, writing from a child process; `done` is their result, `stop()` ends them early.
 * A failure of `done` is never unhandled while nobody awaits it yet (the bench's warm-up).
 */
export function startCameraWriter(plan: WriterPlan): { done: Promise<WriterResult>; stop: () => void } {
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const done = new Promise<WriterResult>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('error', reject);
    // 'close', not 'exit': stdout has been read to its end by then.
    child.once('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`camera writer exited with ${signal ?? code}`));
      try {
        resolve(JSON.parse(text) as WriterResult);
      } catch {
        reject(new Error(`camera writer: no result on stdout (${JSON.stringify(text.slice(0, 200))})`));
      }
    });
  });
  done.catch(() => undefined);
  return { done, stop: () => void child.kill('SIGTERM') };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const plan = JSON.parse(process.argv[2] ?? '{}') as WriterPlan;
  process.stdout.write(`${JSON.stringify(await run(plan))}\n`);
}
