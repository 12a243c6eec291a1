/**
 * A run's alerts as the `alerts` topic tells them: one record per change of an alert (the
 * outbox), the full alert each time. The change a record stands for is read off the difference
 * to the alert's previous record: the first is `firing`, one that newly carries
 * `acknowledgedAt` is `acknowledged`, one whose state turned `resolved` is `resolved`.
 * Redelivered records (the same change twice) are not counted twice.
 */
import type { Alert } from '../bus/messages.js';

export type AlertChangeKind = 'firing' | 'acknowledged' | 'resolved';

export interface AlertChangeRecord {
  kind: AlertChangeKind;
  /** When the record reached Kafka (its timestamp), ISO 8601. */
  recordedAt: string;
}

export interface AlertSummary {
  id: string;
  camera: string;
  reason: 'pg-onset' | 'camera-silent';
  action: string;
  state: Alert['state'];
  startsAt: string;
  endsAt?: string;
  acknowledgedAt?: string;
  acknowledgedBy?: string;
  /** The acknowledgement's comment, when the record carries one (`acknowledgedComment`). */
  acknowledgedComment?: string;
  evidence: Alert['evidence'];
  changes: AlertChangeRecord[];
  /** Kafka timestamp of the alert's first record (when it was emitted), ms since the epoch. */
  firstRecordedMs: number;
}

/** Alerts per run kept (a run with more is a detector gone wrong; the excess is counted). */
export const MAX_ALERTS = 1000;

export class AlertHistory {
  private readonly alerts = new Map<string, AlertSummary>();
  dropped = 0;

  constructor(readonly runId: string) {}

  /** Folds one decoded `alerts` record (other runs' records are ignored). */
  add(alert: Alert, raw: Record<string, unknown>, recordedMs: number): void {
    if (alert.runId !== this.runId) return;
    const recordedAt = new Date(recordedMs).toISOString();
    const known = this.alerts.get(alert.id);
    if (!known) {
      if (this.alerts.size >= MAX_ALERTS) {
        this.dropped += 1;
        return;
      }
      const summary: AlertSummary = { ...fields(alert, raw), changes: [], firstRecordedMs: recordedMs };
      // An alert first seen acknowledged or resolved (earlier records expired) still shows what it went through.
      summary.changes.push({ kind: 'firing', recordedAt });
      if (alert.acknowledgedAt) summary.changes.push({ kind: 'acknowledged', recordedAt });
      if (alert.state === 'resolved') summary.changes.push({ kind: 'resolved', recordedAt });
      this.alerts.set(alert.id, summary);
      return;
    }
    if (alert.acknowledgedAt && !known.acknowledgedAt) known.changes.push({ kind: 'acknowledged', recordedAt });
    if (alert.state === 'resolved' && known.state !== 'resolved') known.changes.push({ kind: 'resolved', recordedAt });
    const updated = fields(alert, raw);
    // The firing record's evidence is the onset's; later records repeat it, or may carry less.
    // Fields a later record lacks (an acknowledgement) are kept: a change never takes them back.
    Object.assign(known, { ...updated, evidence: known.evidence.frames.length >= updated.evidence.frames.length ? known.evidence : updated.evidence });
  }

  list(): AlertSummary[] {
    return [...this.alerts.values()].sort((a, b) => Date.parse(a.startsAt) - Date.parse(b.startsAt) || a.id.localeCompare(b.id));
  }

  /** The frame ids of every alert's evidence (what the report shows as pictures). */
  evidenceFrameIds(): Set<string> {
    const ids = new Set<string>();
    for (const a of this.alerts.values()) for (const f of a.evidence.frames) ids.add(f.frameId);
    return ids;
  }
}

function fields(alert: Alert, raw: Record<string, unknown>): Omit<AlertSummary, 'changes' | 'firstRecordedMs'> {
  const comment = typeof raw.acknowledgedComment === 'string' ? raw.acknowledgedComment.slice(0, 1000) : undefined;
  return {
    id: alert.id,
    camera: alert.camera,
    reason: alert.reason ?? 'pg-onset',
    action: alert.action,
    state: alert.state,
    startsAt: alert.startsAt,
    ...(alert.endsAt ? { endsAt: alert.endsAt } : {}),
    ...(alert.acknowledgedAt ? { acknowledgedAt: alert.acknowledgedAt } : {}),
    ...(alert.acknowledgedBy ? { acknowledgedBy: alert.acknowledgedBy } : {}),
    ...(comment ? { acknowledgedComment: comment } : {}),
    evidence: alert.evidence,
  };
}
