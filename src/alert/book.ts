/**
 * Every alert the stage knows, by id: each firing one, and the latest `keep` others. The book is
 * what `GET /api/alerts` lists and what an acknowledgement finds; after a restart it is rebuilt
 * from the `alerts` topic (src/alert/restore.ts).
 */
import type { Alert } from '../bus/messages.js';
import { reasonOf, type AlertReason } from './change.js';

export class AlertBook {
  private readonly alerts = new Map<string, Alert>();

  constructor(private readonly keep = 1000) {}

  get size(): number {
    return this.alerts.size;
  }

  get(id: string): Alert | undefined {
    return this.alerts.get(id);
  }

  /** Records the alert (a new one, or the latest version of a known one). */
  put(alert: Alert): void {
    this.alerts.set(alert.id, alert);
    if (this.alerts.size <= this.keep) return;
    for (const [id, kept] of this.alerts) {
      if (kept.state !== 'firing') {
        this.alerts.delete(id);
        return;
      }
    }
  }

  /** Copies, newest first. */
  list(): Alert[] {
    return [...this.alerts.values()].reverse().map((a) => structuredClone(a));
  }

  firing(reason?: AlertReason): Alert[] {
    return [...this.alerts.values()].filter((a) => a.state === 'firing' && (reason === undefined || reasonOf(a) === reason));
  }

  /** Firing alerts of this camera with this reason. */
  firingOn(camera: string, reason: AlertReason): number {
    let n = 0;
    for (const a of this.alerts.values()) if (a.state === 'firing' && a.camera === camera && reasonOf(a) === reason) n += 1;
    return n;
  }
}
