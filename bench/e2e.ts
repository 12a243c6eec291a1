/**
 * End-to-end benchmark: N simulated cameras × F frames/s of full frames through
 * the whole pipeline (embedded broker, ingest, classify, metrics, detector) in one
 * process. Reports sustained frames/s, file-complete → prediction and → alert
 * latencies, CPU and memory.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { FrameCamera } from '../simulator/index.js';
import { validateConfig } from '../src/config/index.js';
import { silentLogger } from '../src/config/logger.js';
import { startPipeline } from '../src/app/pipeline.js';
import type { Alert, Prediction } from '../src/bus/messages.js';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const cameras = Number(process.env.BENCH_E2E_CAMERAS ?? (options.quick ? 2 : 8));
  const fps = Number(process.env.BENCH_E2E_FPS ?? (options.quick ? 2 : 10));
  const durationS = Number(process.env.BENCH_E2E_SECONDS ?? (options.quick ? 8 : 30));
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
  const simulated = ids.map(
    (id, i) =>
      new FrameCamera({ out: path.join(dir, 'cameras', id), camera: id, fps, durationS: durationS + warmupS, pgOnsetS: i === 0 ? onsetS + warmupS : null, seed: 100 + i }),
  );
  try {
    for (const camera of simulated) await camera.start();
    await new Promise((r) => setTimeout(r, warmupS * 1000));
    measuring = true;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 250);
    await Promise.all(simulated.map((c) => c.done()));
    await new Promise((r) => setTimeout(r, 1500)); // let the tail drain
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    latencies.sort((a, b) => a - b);
    const offered = cameras * fps;
    return {
      'e2e.cameras': cameras,
      'e2e.fps_per_camera': fps,
      'e2e.frame_size': '1280x960',
      'e2e.offered_frames_per_s': offered,
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
  bench({ quick }).then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`));
}
