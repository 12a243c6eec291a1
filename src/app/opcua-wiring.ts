/**
 * The OPC UA server (src/opcua) fed by the monitor process: per camera the smoothed P(PG), the
 * last class, frames per second, the usable share and the camera state from each prediction;
 * the PG onset condition from the alert stage's delivery consumer (a sink like any other); its
 * Acknowledge, StartRun and EndRun calls go to the alert stage and the runs topic exactly like
 * the page's and the API's.
 */
import type { Alert, Prediction } from '../bus/messages.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../config/logger.js';
import { OpcUaAlertSink, OpcUaServer, showCurrentAlerts, type CameraState } from '../opcua/index.js';
import type { RunControl } from '../runs/index.js';

/** Weight of the newest frame in the smoothed P(PG) (about the last 10 frames). */
const SMOOTHING = 0.2;
/** Frames per second and the usable share are over this window. */
const WINDOW_MS = 10_000;
/** Cameras tracked at once (the server itself publishes at most its maxCameras). */
const MAX_TRACKED = 1024;

interface CameraFigures {
  smoothed?: number;
  /** Capture time (ms) and usable flag of the frames in the window, oldest first. */
  recent: { at: number; usable: boolean }[];
  silent: boolean;
}

export interface OpcUaHooks {
  acknowledge(id: string, by: string, comment?: string): Promise<Alert | undefined>;
  runs: () => RunControl | undefined;
}

export class OpcUaWiring {
  readonly server: OpcUaServer;
  readonly sink: OpcUaAlertSink;
  private readonly cameras = new Map<string, CameraFigures>();
  private readonly logger: Logger;

  constructor(config: Config['opcua'], dataDir: string, hooks: OpcUaHooks, logger: Logger) {
    this.logger = logger.child({ stage: 'opcua' });
    const runs = () => {
      const control = hooks.runs();
      if (!control) throw new Error('runs are not available in this process');
      return control;
    };
    this.server = new OpcUaServer({
      host: config.host,
      port: config.port,
      security: config.security,
      users: config.users,
      dataDir,
      logger: this.logger,
      onAcknowledge: async (alertId, { by, comment }) => {
        const acked = await hooks.acknowledge(alertId, by.startsWith('opcua') ? by : `opcua:${by}`, comment);
        if (!acked) throw new Error(`no alert with id ${alertId}`);
      },
      onStartRun: async (runId, camera) => {
        await runs().startRun({ runId, ...(camera ? { camera } : {}), by: 'opcua', source: 'opcua' });
      },
      onEndRun: async (camera) => {
        await runs().endRun({ ...(camera ? { camera } : {}), by: 'opcua', source: 'opcua' });
      },
    });
    this.sink = new OpcUaAlertSink(this.server, this.logger);
  }

  async start(currentAlerts: Alert[]): Promise<void> {
    await this.server.start();
    showCurrentAlerts(this.server, currentAlerts, this.logger);
  }

  /** Per prediction (the monitor stage's event). */
  prediction(p: Prediction): void {
    const figures = this.figuresOf(p.camera);
    if (!figures) return;
    const at = Date.parse(p.capturedAt);
    const usable = p.predicted !== 'unusable' && p.pPG !== null;
    figures.recent.push({ at, usable });
    while (figures.recent.length > 0 && figures.recent[0]!.at < at - WINDOW_MS) figures.recent.shift();
    if (usable) figures.smoothed = figures.smoothed === undefined ? p.pPG! : SMOOTHING * p.pPG! + (1 - SMOOTHING) * figures.smoothed;
    figures.silent = false;
    const span = figures.recent.length > 1 ? (figures.recent[figures.recent.length - 1]!.at - figures.recent[0]!.at) / 1000 : 0;
    this.server.updateCamera(p.camera, {
      ...(figures.smoothed !== undefined ? { pPG: figures.smoothed } : {}),
      ...(usable ? { predicted: p.predicted } : {}),
      cameraState: this.stateOf(figures, usable),
      framesPerSecond: span > 0 ? (figures.recent.length - 1) / span : 0,
      usableFraction: figures.recent.filter((f) => f.usable).length / figures.recent.length,
      lastFrameTime: p.capturedAt,
      modelVersion: p.model,
      runId: p.runId,
    });
  }

  /** Every alert change: a camera-silent alert sets CameraState to silent until frames return. */
  alert(a: Alert): void {
    if (a.reason !== 'camera-silent') return;
    const figures = this.figuresOf(a.camera);
    if (!figures) return;
    figures.silent = a.state === 'firing';
    this.server.updateCamera(a.camera, { cameraState: figures.silent ? 'silent' : this.stateOf(figures, figures.recent.at(-1)?.usable ?? true) });
  }

  close(): Promise<void> {
    return this.server.close();
  }

  private figuresOf(camera: string): CameraFigures | undefined {
    let figures = this.cameras.get(camera);
    if (!figures) {
      if (this.cameras.size >= MAX_TRACKED) return undefined;
      figures = { recent: [], silent: false };
      this.cameras.set(camera, figures);
    }
    return figures;
  }

  private stateOf(figures: CameraFigures, lastUsable: boolean): CameraState {
    if (figures.silent) return 'silent';
    return lastUsable ? 'ok' : 'unusable';
  }
}
