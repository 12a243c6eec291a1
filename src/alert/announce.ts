/**
 * Tells the process about alert changes once they are in the outbox: the log lines, the alarm
 * gauges and counters, the stage's 'alert' listeners and the app's `publish` callback (the live
 * page). Every listener and the callback are guarded: a throw is logged and counted, and costs
 * neither the change nor the other listeners anything.
 */
import type { EventEmitter } from 'node:events';
import type { Counter } from 'prom-client';
import type { KnownCameras } from '../bus/known-cameras.js';
import type { Alert } from '../bus/messages.js';
import type { Logger } from '../config/logger.js';
import type { AlertBook } from './book.js';
import { reasonOf, type AlertChange } from './change.js';
import type { AlertMetrics } from './metrics.js';

export interface AnnouncerOptions {
  /** Whose 'alert' listeners are called (the stage). */
  emitter: EventEmitter;
  book: AlertBook;
  metrics: AlertMetrics;
  known: KnownCameras;
  unknownCameras: Counter<'stage'>;
  stage: string;
  logger: Logger;
  publish?: (alert: Alert) => void;
}

export class AlertAnnouncer {
  constructor(private readonly options: AnnouncerOptions) {}

  announce(changes: AlertChange[]): void {
    const { metrics, logger, publish } = this.options;
    for (const { alert, kind } of changes) {
      const reason = reasonOf(alert);
      if (kind === 'firing') {
        if (reason === 'pg-onset') {
          metrics.alerts.inc({ camera: alert.camera });
          logger.warn(
            { alertId: alert.id, camera: alert.camera, runId: alert.runId, firstPgFrameId: alert.evidence.firstPgFrameId, statistic: alert.evidence.statistic },
            'PG onset: alert firing',
          );
        } else {
          metrics.silentAlerts.inc({ camera: alert.camera });
          logger.warn({ alertId: alert.id, camera: alert.camera, runId: alert.runId, lastSeenAt: alert.evidence.lastSeenAt }, 'camera silent: alert firing');
        }
      } else if (kind === 'resolved') {
        logger.info({ alertId: alert.id, camera: alert.camera, runId: alert.runId, reason }, 'alert resolved');
      }
      this.setGauges(alert.camera, false);
      const copy = structuredClone(alert);
      this.emitAlert(copy);
      if (!publish) continue;
      try {
        publish(copy);
        metrics.deliveries.inc({ sink: 'websocket', outcome: 'delivered' });
      } catch (err) {
        metrics.deliveries.inc({ sink: 'websocket', outcome: 'failed' });
        logger.warn({ err: (err as Error).message }, 'alert publish callback threw');
      }
    }
  }

  /**
   * The alarm gauges follow the book. They exist (at 0) from a camera's first frame, so "absent"
   * never means "fine"; the alert counters too, so increase()/changes() see a first alert.
   */
  setGauges(camera: string, first: boolean): void {
    const { metrics, book } = this.options;
    if (!this.options.known.admit(camera)) {
      if (first) this.options.unknownCameras.inc({ stage: this.options.stage });
      return;
    }
    metrics.alarm.set({ camera }, book.firingOn(camera, 'pg-onset') > 0 ? 1 : 0);
    metrics.silent.set({ camera }, book.firingOn(camera, 'camera-silent') > 0 ? 1 : 0);
    if (first) {
      metrics.alerts.inc({ camera }, 0);
      metrics.silentAlerts.inc({ camera }, 0);
    }
  }

  /** Calls every 'alert' listener, each guarded: one that throws is logged and counted, the others are still called. */
  private emitAlert(alert: Alert): void {
    const { emitter, metrics, logger } = this.options;
    for (const listener of emitter.rawListeners('alert') as ((a: Alert) => void)[]) {
      try {
        listener.call(emitter, alert);
      } catch (err) {
        metrics.deliveries.inc({ sink: 'listener', outcome: 'failed' });
        logger.error({ err: (err as Error).message, alertId: alert.id }, "an 'alert' event listener threw; the change is in the outbox regardless");
      }
    }
  }
}
