/**
 * The alerts topic → the PgOnset conditions. Shaped like the alert stage's AlertSink (name,
 * target, wants, deliver) so the delivery consumer can feed the server like any other sink,
 * without this folder importing the alert stage.
 */
import type { Alert } from '../bus/messages.js';
import { silentLogger, type Logger } from '../config/logger.js';
import type { PgAlarm } from './alarms.js';
import type { OpcUaServer } from './server.js';

export type AlertChangeKind = 'firing' | 'resolved' | 'acknowledged';

/** What an operator reads in the SCADA alarm list. */
export function pgAlarmOf(alert: Alert): PgAlarm {
  return {
    id: alert.id,
    camera: alert.camera,
    runId: alert.runId,
    startsAt: alert.startsAt,
    message: `PG onset on camera ${alert.camera} (run ${alert.runId}) since ${alert.startsAt}: stop the batch`,
  };
}

const isPgOnset = (alert: Alert) => (alert.reason ?? 'pg-onset') === 'pg-onset';

/** OpcUaServer.raiseAlarm's refusal when it already shows maxCameras cameras: no retry can change it. */
const CAMERA_LIMIT = /cannot be shown, the server already shows \d+ cameras/;
/** Cameras whose refusal was logged (bounded: camera ids are not trusted to be few). */
const MAX_REFUSED_LOGGED = 1024;

export class OpcUaAlertSink {
  readonly name = 'opcua';
  private readonly refused = new Set<string>();

  /** `logger` gets one warning per camera the server has no room for. */
  constructor(
    private readonly server: OpcUaServer,
    private readonly logger: Logger = silentLogger,
  ) {}

  get target(): string {
    return this.server.endpointUrl;
  }

  /** PG onsets only: camera-silent alerts show as CameraState = silent. */
  wants(_kind: AlertChangeKind, alert: Alert): boolean {
    return isPgOnset(alert);
  }

  /**
   * A camera beyond the server's maxCameras is not shown: that is logged once per camera and the
   * change counts as delivered, since retrying it for the delivery deadline would hold back this
   * sink's queue, and so every other camera's alarms, for nothing.
   */
  async deliver(alert: Alert, kind: AlertChangeKind): Promise<void> {
    if (kind === 'firing') this.raise(alert);
    else if (kind === 'resolved') this.server.resolveAlarm(alert.id);
    else this.server.markAcknowledged(alert.id, alert.acknowledgedBy ?? 'unknown');
  }

  private raise(alert: Alert): void {
    try {
      this.server.raiseAlarm(pgAlarmOf(alert));
    } catch (err) {
      const message = (err as Error).message;
      if (!CAMERA_LIMIT.test(message)) throw err;
      if (this.refused.has(alert.camera) || this.refused.size >= MAX_REFUSED_LOGGED) return;
      this.refused.add(alert.camera);
      this.logger.warn(
        { camera: alert.camera, alertId: alert.id, err: message },
        `OPC UA: PG alarms of camera ${alert.camera} are not shown (the server's camera limit); not retried. Raise opcua maxCameras`,
      );
    }
  }
}

/**
 * Shows what the lifecycle holds now (call once after start): deliveries committed before a
 * restart are not replayed, so without this a firing alert would not show. Per camera the newest
 * PG onset counts: firing → active (acknowledged if it was); resolved but never acknowledged →
 * inactive and waiting for an acknowledgement; resolved and acknowledged → nothing to show.
 * Cameras beyond the server's maxCameras are skipped (logged), not a failed start.
 */
export function showCurrentAlerts(server: OpcUaServer, alerts: Alert[], logger: Logger = silentLogger): void {
  const newest = new Map<string, Alert>();
  for (const alert of alerts) {
    if (!isPgOnset(alert)) continue;
    const seen = newest.get(alert.camera);
    if (!seen || Date.parse(alert.startsAt) > Date.parse(seen.startsAt)) newest.set(alert.camera, alert);
  }
  for (const alert of newest.values()) {
    if (alert.state === 'resolved' && alert.acknowledgedAt) continue;
    try {
      server.raiseAlarm(pgAlarmOf(alert));
    } catch (err) {
      if (!CAMERA_LIMIT.test((err as Error).message)) throw err;
      logger.warn(
        { camera: alert.camera, alertId: alert.id, err: (err as Error).message },
        `OPC UA: the PG alarm of camera ${alert.camera} is not shown (the server's camera limit). Raise opcua maxCameras`,
      );
      continue;
    }
    if (alert.acknowledgedAt) server.markAcknowledged(alert.id, alert.acknowledgedBy ?? 'unknown');
    if (alert.state === 'resolved') server.resolveAlarm(alert.id);
  }
}
