/**
 * The alerts topic → the PgOnset conditions. Shaped like the alert stage's AlertSink (name,
 * target, wants, deliver) so the delivery consumer can feed the server like any other sink,
 * without this folder importing the alert stage.
 */
import type { Alert } from '../bus/messages.js';
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

export class OpcUaAlertSink {
  readonly name = 'opcua';

  constructor(private readonly server: OpcUaServer) {}

  get target(): string {
    return this.server.endpointUrl;
  }

  /** PG onsets only: camera-silent alerts show as CameraState = silent. */
  wants(_kind: AlertChangeKind, alert: Alert): boolean {
    return isPgOnset(alert);
  }

  async deliver(alert: Alert, kind: AlertChangeKind): Promise<void> {
    if (kind === 'firing') this.server.raiseAlarm(pgAlarmOf(alert));
    else if (kind === 'resolved') this.server.resolveAlarm(alert.id);
    else this.server.markAcknowledged(alert.id, alert.acknowledgedBy ?? 'unknown');
  }
}

/**
 * Shows what the lifecycle holds now (call once after start): deliveries committed before a
 * restart are not replayed, so without this a firing alert would not show. Per camera the newest
 * PG onset counts: firing → active (acknowledged if it was); resolved but never acknowledged →
 * inactive and waiting for an acknowledgement; resolved and acknowledged → nothing to show.
 */
export function showCurrentAlerts(server: OpcUaServer, alerts: Alert[]): void {
  const newest = new Map<string, Alert>();
  for (const alert of alerts) {
    if (!isPgOnset(alert)) continue;
    const seen = newest.get(alert.camera);
    if (!seen || Date.parse(alert.startsAt) > Date.parse(seen.startsAt)) newest.set(alert.camera, alert);
  }
  for (const alert of newest.values()) {
    if (alert.state === 'resolved' && alert.acknowledgedAt) continue;
    server.raiseAlarm(pgAlarmOf(alert));
    if (alert.acknowledgedAt) server.markAcknowledged(alert.id, alert.acknowledgedBy ?? 'unknown');
    if (alert.state === 'resolved') server.resolveAlarm(alert.id);
  }
}
