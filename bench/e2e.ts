/**
 * End-to-end benchmark: N cameras × F frames/s of full frames through the whole
 * pipeline (embedded broker, ingest, classify, metrics, detector) in one process.
 * Reports sustained frames/s, file-complete → prediction and → alert latencies,
 * CPU and memory.
 *
 * Rendering a 1280×960 frame costs the simulator ~100–180 ms of CPU, far more than
 * crystalwatch spends on it, so by default the cameras replay frames rendered before
 * the clock starts (written like camera software does: sidecar, then temp file and
 * rename, at a steady rate). `BENCH_E2E_RENDER=1` renders every frame live instead.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { FrameCamera, frameFileName, renderFrame, writeAtomic, type FrameTruth } from '../simulator/index.js';
import { validateConfig } from '../src/config/index.js';
import { silentLogger } from '../src/config/logger.js';
import { startPipeline } from '../src/app/pipeline.js';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { sleep } from './support.js';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const cameras = Number(process.env.BENCH_E2E_CAMERAS ?? (options.quick ? 2 : 8));
  const fps = Number(process.env.BENCH_E2E_FPS ?? (options.quick ? 2 : 10));
  const durationS = Number(process.env.BENCH_E2E_SECONDS ?? (options.quick ? 16 : 30));
  const warmupS = options.quick ? 2 : 5;
  const onsetS = Math.round(durationS / 2);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-bench-e2e-'));
  const ids = Array.from({ length: cameras }, (_, i) => `cam-${i + 1}`);
  const config = validateConfig({
    dataDir: dir,
    stages: ['ingest', 'classify', 'monitor'],
    cameras: ids.map((id) => ({ id, watch: path.join(dir, 'cameras', id), runId: `bench-${id}` })),
    ingest: { after: 'delete', reconcileIntervalMs: 2_000 },
    log: { level: 'silent' },
  });
  for (const c of config.cameras) await mkdir(c.watch, { recursive: true });

  const latencies: number[] = [];
  let predictions = 0;
  let measuring = false;
  let firstPgCompletedAt: number | undefined;
  let alertLatencyMs: number | undefined;
  const pipeline = await startPipeline(config, silentLogger, {
    onPrediction: (p: Prediction) => {
      if (p.camera === 'cam-1' && p.label === 'pg' && firstPgCompletedAt === undefined && p.ingestedAt) firstPgCompletedAt = p.ingestedAt;
      if (!measuring) return;
      predictions += 1;
      if (p.ingestedAt) latencies.push(Date.now() - p.ingestedAt);
    },
    onAlert: (a: Alert) => {
      if (a.state === 'firing' && alertLatencyMs === undefined && firstPgCompletedAt !== undefined) alertLatencyMs = Date.now() - firstPgCompletedAt;
    },
  });
  const live = process.env.BENCH_E2E_RENDER === '1';
  const totalS = durationS + warmupS;
  const simulated: Camera[] = live
    ? ids.map(
        (id, i) =>
          new FrameCamera({
            out: path.join(dir, 'cameras', id),
            camera: id,
            fps,
            durationS: totalS,
            pgOnsetS: i === 0 ? onsetS + warmupS : null,
            seed: 100 + i,
          }),
      )
    : await replayCameras(ids, dir, fps, totalS, onsetS + warmupS);
  try {
    for (const camera of simulated) await camera.start();
    await sleep(warmupS * 1000);
    measuring = true;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 250);
    await Promise.all(simulated.map((c) => c.done()));
    const seconds = (performance.now() - started) / 1000;
    // Let the tail drain, and give the alert for the onset a chance to arrive.
    const drainUntil = Date.now() + 10_000;
    await sleep(1500);
    while (alertLatencyMs === undefined && Date.now() < drainUntil) await sleep(250);
    clearInterval(sampler);
    const cpu = process.cpuUsage(cpuBefore);
    latencies.sort((a, b) => a - b);
    const offered = cameras * fps;
    return {
      'e2e.cameras': cameras,
      'e2e.fps_per_camera': fps,
      'e2e.frame_size': '1280x960',
      'e2e.offered_frames_per_s': offered,
      'e2e.frames_written': simulated.reduce((n, c) => n + c.framesWritten, 0),
      'e2e.sustained_frames_per_s': Math.round((predictions / seconds) * 10) / 10,
      'e2e.file_to_prediction_ms.p50': percentile(latencies, 50),
      'e2e.file_to_prediction_ms.p99': percentile(latencies, 99),
      'e2e.file_to_alert_ms': alertLatencyMs ?? 'no alert',
      'e2e.cpu_cores_used': Math.round(((cpu.user + cpu.system) / 1e6 / seconds) * 100) / 100,
      'e2e.peak_rss_mib': Math.round(peakRss / 2 ** 20),
      'e2e.backend': pipeline.classify?.info.backend ?? 'none',
      'e2e.device': pipeline.classify?.info.device ?? 'none',
    };
  } finally {
    for (const camera of simulated) await camera.close();
    await pipeline.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  // Not a top-level await: the classes below must be initialised before bench() uses them.
  bench({ quick })
    .then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`))
    .catch((err) => {
      console.error(`bench e2e: ${(err as Error).message}`);
      process.exitCode = 1;
    });
}

interface Camera {
  start(): Promise<void>;
  done(): Promise<void>;
  close(): Promise<void>;
  readonly framesWritten: number;
}

/** Cameras that write pre-rendered frames (CEX; PG after the onset for the first camera) at a steady rate. */
async function replayCameras(ids: string[], dir: string, fps: number, durationS: number, onsetS: number): Promise<Camera[]> {
  const cex: { png: Buffer; truth: FrameTruth }[] = [];
  const pg: { png: Buffer; truth: FrameTruth }[] = [];
  for (let i = 0; i < 6; i++) {
    cex.push(await renderFrame({ seed: 200 + i, frameIndex: i, tSeconds: 1, pgOnsetS: null }));
    pg.push(await renderFrame({ seed: 300 + i, frameIndex: i, tSeconds: 60 + 20 * i, pgOnsetS: 30 }));
  }
  return ids.map((camera, c) => new ReplayCamera(path.join(dir, 'cameras', camera), camera, fps, durationS, c === 0 ? onsetS : null, cex, pg));
}

class ReplayCamera implements Camera {
  framesWritten = 0;
  private timer: NodeJS.Timeout | undefined;
  private finished!: () => void;
  private readonly finishedPromise = new Promise<void>((resolve) => (this.finished = resolve));
  private writing = Promise.resolve();

  constructor(
    private readonly out: string,
    private readonly camera: string,
    private readonly fps: number,
    private readonly durationS: number,
    private readonly onsetS: number | null,
    private readonly cex: { png: Buffer; truth: FrameTruth }[],
    private readonly pg: { png: Buffer; truth: FrameTruth }[],
  ) {}

  async start(): Promise<void> {
    const startedAt = Date.now();
    const total = Math.round(this.durationS * this.fps);
    let index = 0;
    this.timer = setInterval(() => {
      if (index >= total) {
        clearInterval(this.timer);
        void this.writing.then(() => this.finished());
        return;
      }
      const i = index++;
      const t = (Date.now() - startedAt) / 1000;
      const source = this.onsetS !== null && t >= this.onsetS ? this.pg[i % this.pg.length]! : this.cex[i % this.cex.length]!;
      this.writing = this.writing.then(() => this.write(i, source));
    }, 1000 / this.fps);
  }

  private async write(index: number, source: { png: Buffer; truth: FrameTruth }): Promise<void> {
    const capturedAt = new Date();
    const name = frameFileName(this.camera, capturedAt, index);
    const truth: FrameTruth = { ...source.truth, camera: this.camera, capturedAt: capturedAt.toISOString(), frameIndex: index };
    // Sidecar first, so ingest finds the truth when the image completes (as the simulator's camera does).
    await writeAtomic(this.out, name.replace(/\.png$/, '.json'), JSON.stringify(truth));
    await writeAtomic(this.out, name, source.png);
    this.framesWritten += 1;
  }

  done(): Promise<void> {
    return this.finishedPromise;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.writing;
    this.finished();
  }
}
