/**
 * End-to-end benchmark: N cameras × F frames/s of full frames through the whole
 * pipeline (embedded broker, ingest, classify, metrics, detector) in one process.
 * Reports sustained frames/s, file-complete → prediction and → alert latencies,
 * CPU and memory.
 *
 * Rendering a 1280×960 frame costs the simulator ~100–180 ms of CPU, far more than
 * crystalwatch spends on it, so by default the cameras replay frames rendered before
 * the clock starts (written like camera software does: sidecar, then temp file and
 * rename, at a steady rate), from a child process (camera-writer.ts), so that the CPU of the
 * cameras' file writes is not counted as the pipeline's. `BENCH_E2E_RENDER=1` renders every
 * frame live instead, in this process.
 */
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { FrameCamera, renderFrame, type FrameTruth } from '../simulator/index.js';
import { validateConfig } from '../src/config/index.js';
import { silentLogger } from '../src/config/logger.js';
import { startPipeline } from '../src/app/pipeline.js';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { sleep } from './support.js';
import { bareFrames } from './classify.js';
import { defaultModelDir } from '../src/classify/command.js';
import { startCameraWriter, type ReplayFrame, type WriterPlan, type WriterResult } from './camera-writer.js';

const modelPath = () => process.env.CRYSTALWATCH_BENCH_MODEL ?? defaultModelDir();

function percentile(sorted: number[], p: number): number | string {
  if (sorted.length === 0) return 'none';
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface ScenarioResult {
  figures: Record<string, number | string>;
  sustained: number;
}

/** The sum of a counter's series in the pipeline's registry (0 when it is absent). */
async function counterTotal(pipeline: Awaited<ReturnType<typeof startPipeline>>, name: string): Promise<number> {
  const metric = pipeline.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

/**
 * One run of the whole pipeline: `cameras` × `fps` for `durationS` after a warm-up. Figures are
 * named `<prefix>.<name>`, so the main run keeps the stable `e2e.*` names.
 */
async function scenario(prefix: string, cameras: number, fps: number, durationS: number, warmupS: number): Promise<ScenarioResult> {
  const onsetS = Math.round(durationS / 2);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-bench-e2e-'));
  const ids = Array.from({ length: cameras }, (_, i) => `cam-${i + 1}`);
  const config = validateConfig({
    dataDir: dir,
    stages: ['ingest', 'classify', 'monitor'],
    cameras: ids.map((id) => ({ id, watch: path.join(dir, 'cameras', id), runId: `bench-${id}` })),
    ingest: { after: 'delete', reconcileIntervalMs: 2_000 },
    // BENCH_E2E_TCP=1: the pipeline's clients reach the embedded broker over loopback TCP (broker.inProcessClients false).
    ...(process.env.BENCH_E2E_TCP === '1' ? { broker: { inProcessClients: false } } : {}),
    // BENCH_E2E_POLICY=in-order|skip|newest-first compares the overload policies (default: the config's).
    // BENCH_E2E_FETCH='{"maxBytes":25165824}' tries other classify.fetch bounds (default: the config's).
    classify: {
      ...(process.env.BENCH_E2E_POLICY ? { overload: { policy: process.env.BENCH_E2E_POLICY } } : {}),
      ...(process.env.BENCH_E2E_FETCH ? { fetch: JSON.parse(process.env.BENCH_E2E_FETCH) as object } : {}),
    },
    log: { level: 'silent' },
  });
  for (const c of config.cameras) await mkdir(c.watch, { recursive: true });

  const latencies: number[] = [];
  const fresh: number[] = [];
  const predicted = new Set<string>();
  let predictions = 0;
  let late = 0;
  let measuring = false;
  let firstPgCompletedAt: number | undefined;
  let alertLatencyMs: number | undefined;
  const pipeline = await startPipeline(config, silentLogger, {
    onPrediction: (p: Prediction) => {
      predicted.add(p.frameId);
      if (p.camera === 'cam-1' && p.label === 'pg' && firstPgCompletedAt === undefined && p.ingestedAt) firstPgCompletedAt = p.ingestedAt;
      if (!measuring) return;
      predictions += 1;
      if (p.late) late += 1;
      if (!p.ingestedAt) return;
      latencies.push(Date.now() - p.ingestedAt);
      if (!p.late) fresh.push(Date.now() - p.ingestedAt);
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
    const skipped0 = await counterTotal(pipeline, 'crystalwatch_frames_skipped_total');
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    let peakRss = 0;
    let samples = 0;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      // BENCH_E2E_MEMORY=1: where the memory is, every 5 s (heap, buffers outside it), on stderr.
      if (process.env.BENCH_E2E_MEMORY === '1' && samples++ % 20 === 0) {
        const mib = (v: number) => Math.round(v / 2 ** 20);
        process.stderr.write(`bench e2e: rss ${mib(m.rss)} heap ${mib(m.heapUsed)} external ${mib(m.external)} arrayBuffers ${mib(m.arrayBuffers)} MiB\n`);
      }
    }, 250);
    await Promise.all(simulated.map((c) => c.done()));
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const measured = predictions;
    const skipped = (await counterTotal(pipeline, 'crystalwatch_frames_skipped_total')) - skipped0;
    // Let the tail drain (and newest-first catch up), and give the onset's alert a chance to arrive.
    const written = simulated.reduce((n, c) => n + c.framesWritten, 0);
    const writeFailures = simulated.reduce((n, c) => n + (c.writeFailures ?? 0), 0);
    const drainUntil = Date.now() + 30_000;
    await sleep(1500);
    while ((alertLatencyMs === undefined || predicted.size < written) && Date.now() < drainUntil) await sleep(250);
    clearInterval(sampler);
    latencies.sort((a, b) => a - b);
    fresh.sort((a, b) => a - b);
    const offered = cameras * fps;
    const sustained = Math.round((measured / seconds) * 10) / 10;
    const cpuMsPerFrame = measured ? (cpu.user + cpu.system) / 1000 / measured : Number.NaN;
    return {
      sustained,
      figures: {
        [`${prefix}.cameras`]: cameras,
        [`${prefix}.fps_per_camera`]: fps,
        [`${prefix}.frame_size`]: '1280x960',
        [`${prefix}.offered_frames_per_s`]: offered,
        [`${prefix}.frames_written`]: written,
        // The cameras' own failed writes (temp file + rename), which ingest never saw: 0 expected.
        [`${prefix}.camera_write_failures`]: writeFailures,
        [`${prefix}.sustained_frames_per_s`]: sustained,
        [`${prefix}.file_to_prediction_ms.p50`]: percentile(latencies, 50),
        [`${prefix}.file_to_prediction_ms.p99`]: percentile(latencies, 99),
        // Predictions of frames classified on arrival (not caught up later): what the alarm runs on.
        [`${prefix}.fresh_prediction_ms.p50`]: percentile(fresh, 50),
        [`${prefix}.fresh_prediction_ms.p99`]: percentile(fresh, 99),
        [`${prefix}.file_to_alert_ms`]: alertLatencyMs ?? 'no alert',
        [`${prefix}.frames_skipped`]: skipped,
        [`${prefix}.frames_caught_up_late`]: late,
        // Every frame written has a prediction once the drain is over (skipped ones caught up): 0 = none lost.
        [`${prefix}.frames_without_prediction_after_drain`]: Math.max(0, written - predicted.size),
        [`${prefix}.cpu_cores_used`]: Math.round(((cpu.user + cpu.system) / 1e6 / seconds) * 100) / 100,
        [`${prefix}.cpu_ms_per_frame`]: Math.round(cpuMsPerFrame * 100) / 100,
        [`${prefix}.peak_rss_mib`]: Math.round(peakRss / 2 ** 20),
        [`${prefix}.backend`]: pipeline.classify?.info.backend ?? 'none',
        [`${prefix}.device`]: pipeline.classify?.info.device ?? 'none',
        [`${prefix}.frame_inference`]: pipeline.classify?.info.frameInference ?? 'none',
        [`${prefix}.broker_clients`]: config.broker.inProcessClients ? 'in-process' : 'tcp',
      },
    };
  } finally {
    for (const camera of simulated) await camera.close();
    await pipeline.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const cameras = Number(process.env.BENCH_E2E_CAMERAS ?? (options.quick ? 2 : 8));
  const fps = Number(process.env.BENCH_E2E_FPS ?? (options.quick ? 2 : 10));
  const durationS = Number(process.env.BENCH_E2E_SECONDS ?? (options.quick ? 16 : 30));
  const warmupS = options.quick ? 2 : 5;
  const figures: Record<string, number | string> = { 'e2e.load_average_1m_at_start': Math.round(os.loadavg()[0]! * 100) / 100 };
  // The bare minimum for the same frames in the same run: decoding alone and the engine alone.
  const bare = await bareFrames(modelPath(), await replayFrames(), options.quick);
  figures['e2e.bare.decode_cpu_ms_per_frame'] = bare.decodeMs;
  figures['e2e.bare.engine_cpu_ms_per_frame'] = bare.engineMs;
  figures['e2e.bare.frame_inference'] = bare.frameInference;
  const main = await scenario('e2e', cameras, fps, durationS, warmupS);
  Object.assign(figures, main.figures);
  figures['e2e.cpu_over_bare'] = Math.round((Number(main.figures['e2e.cpu_ms_per_frame']) / (bare.decodeMs + bare.engineMs)) * 100) / 100;
  if (process.env.BENCH_E2E_OVERLOAD !== '0') {
    // Overload: twice what the machine just sustained (at least the main run's offer + 50 %), per camera.
    const overloadFps = Math.max(Math.ceil((2 * main.sustained) / cameras), Math.ceil(1.5 * fps));
    Object.assign(figures, (await scenario('e2e.overload', cameras, overloadFps, options.quick ? 12 : 20, warmupS)).figures);
  }
  figures['e2e.load_average_1m_at_end'] = Math.round(os.loadavg()[0]! * 100) / 100;
  return figures;
}

interface Camera {
  start(): Promise<void>;
  done(): Promise<void>;
  close(): Promise<void>;
  readonly framesWritten: number;
  readonly writeFailures?: number;
}

/** Cameras that write pre-rendered frames (CEX; PG after the onset for the first camera) at a steady rate. */
type Rendered = { png: Buffer; truth: FrameTruth };
let rendered: { cex: Rendered[]; pg: Rendered[] } | undefined;

/** The frames the replay cameras write (rendered once per process: ~150 ms each). */
async function rendering(): Promise<{ cex: Rendered[]; pg: Rendered[] }> {
  if (rendered) return rendered;
  const cex: Rendered[] = [];
  const pg: Rendered[] = [];
  for (let i = 0; i < 6; i++) {
    cex.push(await renderFrame({ seed: 200 + i, frameIndex: i, tSeconds: 1, pgOnsetS: null }));
    pg.push(await renderFrame({ seed: 300 + i, frameIndex: i, tSeconds: 60 + 20 * i, pgOnsetS: 30 }));
  }
  return (rendered = { cex, pg });
}

async function replayFrames(): Promise<Buffer[]> {
  const { cex, pg } = await rendering();
  return [...cex, ...pg].map((r) => r.png);
}

/**
 * The replay cameras, writing from a child process (camera-writer.ts) so that their file writes
 * are not counted as the pipeline's CPU: a plant's camera software runs elsewhere.
 */
async function replayCameras(ids: string[], dir: string, fps: number, durationS: number, onsetS: number): Promise<Camera[]> {
  const { cex, pg } = await rendering();
  const pool = path.join(dir, 'replay');
  await mkdir(pool, { recursive: true });
  const files = async (name: string, frames: Rendered[]): Promise<ReplayFrame[]> =>
    Promise.all(
      frames.map(async (f, i) => {
        const file = path.join(pool, `${name}-${i}.png`);
        await writeFile(file, f.png);
        return { path: file, truth: { ...f.truth } };
      }),
    );
  const plan: WriterPlan = {
    cameras: ids.map((id, c) => ({ id, dir: path.join(dir, 'cameras', id), onsetS: c === 0 ? onsetS : null })),
    cex: await files('cex', cex),
    pg: await files('pg', pg),
    fps,
    seconds: durationS,
  };
  return [new ChildCameras(plan)];
}

/** All the replay cameras, as one `Camera` run by the camera writer's child process. */
class ChildCameras implements Camera {
  private result: WriterResult | undefined;
  private writer: ReturnType<typeof startCameraWriter> | undefined;

  constructor(private readonly plan: WriterPlan) {}

  get framesWritten(): number {
    return this.result?.written ?? 0;
  }

  get writeFailures(): number {
    return this.result?.failures ?? 0;
  }

  start(): Promise<void> {
    this.writer = startCameraWriter(this.plan);
    return Promise.resolve();
  }

  async done(): Promise<void> {
    this.result = await this.writer?.done;
  }

  async close(): Promise<void> {
    this.writer?.stop();
    await this.writer?.done.catch(() => undefined);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  // Last in the file, so every class and binding above is initialised before bench() runs.
  bench({ quick })
    .then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`))
    .catch((err) => {
      console.error(`bench e2e: ${(err as Error).message}`);
      process.exitCode = 1;
    });
}
