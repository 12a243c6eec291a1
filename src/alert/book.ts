/**
 * Every alert the stage knows, by id: each firing one, and the `keep` most recently changed others
 * (an alert acknowledged or resolved just now is kept over one untouched for days). The book is
 * what `GET /api/alerts` lists and what an acknowledgement finds; after a restart it is rebuilt
 * from the `alerts` topic (src/alert/restore.ts).
 */
import type { Alert } from '../bus/messages.js';
import { reasonOf, type AlertReason } from './change.js';

export class AlertBook {
  /** In order of last change, least recent first: eviction takes from the front. */
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
    this.alerts.delete(alert.id); // re-inserted: a Map keeps the position of the first insertion otherwise
    this.alerts.set(alert.id, alert);
    if (this.alerts.size <= this.keep) return;
    for (const [id, kept] of this.alerts) {
      if (kept.state !== 'firing') {
        this.alerts.delete(id);
        return;
      }
    }
  }

  /** Copies, newest first (by `startsAt`; among equals, the most recently changed first). */
  list(): Alert[] {
    const recentFirst = [...this.alerts.values()].reverse();
    return recentFirst
      .map((a, i) => ({ a, i, at: Date.parse(a.startsAt) || 0 }))
      .sort((x, y) => y.at - x.at || x.i - y.i)
      .map(({ a }) => structuredClone(a));
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
