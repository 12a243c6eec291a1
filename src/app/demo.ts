/**
 * `crystalwatch demo` (= `npm start`): the whole plant on one machine. Simulated
 * cameras write full frames into drop folders; the embedded broker, ingest,
 * classify, metrics, the detector and the web server run in this process; one
 * camera sees PG nucleate after `onsetS` seconds.
 */
import path from 'node:path';
import { mkdir, rm } from 'node:fs/promises';
import { FrameCamera } from '../../simulator/index.js';
import { validateConfig, type Config } from '../config/index.js';
import type { Logger } from '../config/logger.js';
import type { Alert, Prediction } from '../bus/messages.js';
import { startPipeline, type Pipeline } from './pipeline.js';
import { Lifecycle } from './lifecycle.js';

export interface DemoOptions {
  cameras: number;
  fps: number;
  /** Seconds until PG nucleates in the first camera; null: never. */
  onsetS: number | null;
  port: number;
  host: string;
  dataDir: string;
  model: string;
  width: number;
  height: number;
  /** Stop by itself after this many seconds (for tests); undefined: until a signal. */
  durationS?: number;
  /** Keep the drop folders and broker data of earlier runs. */
  keepData: boolean;
  seed: number;
  /** Serve OPC UA on this port (security None, loopback); undefined: no OPC UA server. */
  opcuaPort?: number;
  /** Print the live status line (a terminal) or one JSON line per second (`--json`). */
  status: 'pretty' | 'json' | 'none';
}

export interface Demo {
  pipeline: Pipeline;
  cameras: FrameCamera[];
  close(): Promise<void>;
}

export function demoConfig(options: DemoOptions): Config {
  const cameraIds = Array.from({ length: options.cameras }, (_, i) => `cam-${i + 1}`);
  return validateConfig({
    dataDir: options.dataDir,
    cameras: cameraIds.map((id) => ({ id, watch: path.join(options.dataDir, 'cameras', id), runId: `demo-${id}` })),
    // The demo's frames are synthetic: once Kafka has them the files can go, so the
    // drop folders stay small however long the demo runs.
    ingest: { after: 'delete', reconcileIntervalMs: 2_000 },
    classify: { model: options.model },
    web: { host: options.host, port: options.port },
    alert: { resolveAfterCleanFrames: 30 },
    metrics: { windowFrames: 200, windowSeconds: 120 },
    ...(options.opcuaPort !== undefined ? { opcua: { enabled: true, host: options.host, port: options.opcuaPort } } : {}),
  });
}

export async function startDemo(options: DemoOptions, logger: Logger): Promise<Demo> {
  const lifecycle = new Lifecycle(logger);
  const dataDir = path.resolve(options.dataDir);
  if (!options.keepData) {
    await rm(path.join(dataDir, 'cameras'), { recursive: true, force: true });
    await rm(path.join(dataDir, 'broker'), { recursive: true, force: true });
    await rm(path.join(dataDir, 'ingest-ledger.jsonl'), { force: true });
  }
  const config = demoConfig({ ...options, dataDir });
  for (const camera of config.cameras) await mkdir(camera.watch, { recursive: true });

  const status = new DemoStatus(
    options.status,
    config.cameras.map((c) => c.id),
  );
  try {
    const pipeline = lifecycle.add(
      'pipeline',
      await startPipeline(config, logger, {
        onPrediction: (p) => status.prediction(p),
        onAlert: (a) => status.alert(a),
      }),
    );
    const cameras = config.cameras.map((camera, i) =>
      lifecycle.add(
        `camera ${camera.id}`,
        new FrameCamera({
          out: camera.watch,
          camera: camera.id,
          fps: options.fps,
          width: options.width,
          height: options.height,
          pgOnsetS: i === 0 ? options.onsetS : null,
          seed: options.seed + i,
          durationS: options.durationS,
        }),
      ),
    );
    for (const camera of cameras) await camera.start();
    status.start(pipeline, options.onsetS);
    lifecycle.add('status', status);
    return { pipeline, cameras, close: () => lifecycle.close() };
  } catch (err) {
    await lifecycle.close();
    throw err;
  }
}

interface CameraState {
  frames: number;
  lastPPG: number | null;
  predicted: string;
  alarm: boolean;
  unusable: number;
}

/** The demo's terminal: one compact status line per second, and the alert when it fires. */
class DemoStatus {
  private readonly state = new Map<string, CameraState>();
  private timer: NodeJS.Timeout | undefined;
  private lastCounts = new Map<string, number>();
  private startedAt = Date.now();
  private url = '';
  private onsetS: number | null = null;
  private predicted = false;

  constructor(
    private readonly mode: DemoOptions['status'],
    cameras: string[],
  ) {
    for (const id of cameras) this.state.set(id, { frames: 0, lastPPG: null, predicted: '-', alarm: false, unusable: 0 });
  }

  start(pipeline: Pipeline, onsetS: number | null): void {
    this.url = pipeline.web?.url ?? '';
    this.onsetS = onsetS;
    this.startedAt = Date.now();
    if (this.mode === 'pretty') {
      process.stderr.write(
        `\ncrystalwatch demo: ${this.state.size} simulated cameras → embedded Kafka (${pipeline.brokers.join(',')}) → ${pipeline.classify?.info.backend ?? '?'}/${pipeline.classify?.info.device ?? '?'}\n` +
          `  live page  ${this.url}/\n  metrics    ${this.url}/metrics\n` +
          (onsetS === null ? '' : `  PG appears in cam-1 after ~${onsetS}s; Ctrl-C to stop.\n\n`),
      );
    }
    if (this.mode === 'json') {
      process.stdout.write(
        `${JSON.stringify({ event: 'ready', url: this.url, brokers: pipeline.brokers, backend: pipeline.classify?.info.backend, device: pipeline.classify?.info.device })}\n`,
      );
    }
    if (this.mode !== 'none') this.timer = setInterval(() => this.print(), 1000);
  }

  prediction(p: Prediction): void {
    if (!this.predicted) {
      // Start-up to the first answer, from the process's own start (npm start's promise: under 5 s).
      this.predicted = true;
      const seconds = Math.round(process.uptime() * 100) / 100;
      if (this.mode === 'json')
        process.stdout.write(`${JSON.stringify({ event: 'first-prediction', camera: p.camera, frameId: p.frameId, seconds })}
`);
      else if (this.mode === 'pretty')
        process.stderr.write(`  first prediction ${seconds} s after start (${p.camera})
`);
    }
    const s = this.state.get(p.camera) ?? { frames: 0, lastPPG: null, predicted: '-', alarm: false, unusable: 0 };
    s.frames += 1;
    s.lastPPG = p.pPG;
    s.predicted = p.predicted;
    if (p.predicted === 'unusable') s.unusable += 1;
    this.state.set(p.camera, s);
  }

  alert(a: Alert): void {
    const s = this.state.get(a.camera);
    const silent = a.reason === 'camera-silent';
    if (s && !silent) s.alarm = a.state === 'firing' && !a.acknowledgedAt;
    if (this.mode === 'json') {
      process.stdout.write(`${JSON.stringify({ event: 'alert', alert: a })}\n`);
    } else if (this.mode === 'pretty') {
      process.stderr.write(this.alertLine(a));
    }
  }

  /** The terminal line for an alert change: a PG onset says STOP BATCH, a silent camera says check it. */
  private alertLine(a: Alert): string {
    if (a.reason === 'camera-silent') {
      return a.state === 'firing'
        ? `\n\x1b[43;30m SILENT \x1b[0m ${a.camera}: no frames for ${a.evidence.silentSeconds ?? '?'} s — check the camera\n`
        : `\n\x1b[42;30m frames back \x1b[0m ${a.camera}\n`;
    }
    if (a.state !== 'firing') return `\n\x1b[42;30m resolved \x1b[0m ${a.camera}: alert ${a.id} resolved\n`;
    const first = a.evidence.frames[0];
    const elapsed = ((Date.now() - this.startedAt) / 1000).toFixed(1);
    return (
      `\n\x1b[41;97m ALERT \x1b[0m t=${elapsed}s PG onset on ${a.camera} (run ${a.runId}): STOP BATCH — first PG frame ${a.evidence.firstPgFrameId}` +
      `${first ? `, P(PG)=${first.pPG.toFixed(3)}` : ''}; ${a.evidence.frames.length} frames of evidence at ${this.url}/\n`
    );
  }

  private print(): void {
    const parts: Array<Omit<CameraState, 'lastPPG'> & { camera: string; fps: number; pPG: number | null }> = [];
    for (const [camera, s] of this.state) {
      const before = this.lastCounts.get(camera) ?? 0;
      this.lastCounts.set(camera, s.frames);
      parts.push({ camera, fps: s.frames - before, frames: s.frames, pPG: s.lastPPG, predicted: s.predicted, alarm: s.alarm, unusable: s.unusable });
    }
    const t = Math.round((Date.now() - this.startedAt) / 1000);
    if (this.mode === 'json') {
      process.stdout.write(`${JSON.stringify({ event: 'status', t, cameras: parts })}\n`);
      return;
    }
    const line = parts
      .map(
        (p) =>
          `${p.camera} ${String(p.fps).padStart(2)} fps P(PG) ${p.pPG === null ? '  -  ' : p.pPG.toFixed(3)} ${p.alarm ? '\x1b[31mALARM\x1b[0m' : 'ok   '}`,
      )
      .join(' │ ');
    process.stderr.write(`\r\x1b[2Kt=${String(t).padStart(4)}s │ ${line}`);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.mode === 'pretty') process.stderr.write('\n');
  }
}
