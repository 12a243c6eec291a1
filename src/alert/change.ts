/**
 * What the alert stage emits: an alert and the change that happened to it. One change is one
 * record on the `alerts` topic (the outbox) and one delivery to each sink that wants it.
 */
import { createHash } from 'node:crypto';
import type { Alert } from '../bus/messages.js';

export type AlertEventKind = 'firing' | 'resolved' | 'acknowledged';
export type AlertReason = 'pg-onset' | 'camera-silent';

export interface AlertChange {
  alert: Alert;
  kind: AlertEventKind;
}

/** Alerts written before `reason` existed are PG onsets. */
export function reasonOf(alert: Alert): AlertReason {
  return alert.reason ?? 'pg-onset';
}

/** The key receivers de-duplicate one change by: `<alert id>:<event>` (the `Idempotency-Key` header). */
export function changeKey(alert: Alert, kind: AlertEventKind): string {
  return `${alert.id}:${kind}`;
}

function digest(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 16);
}

/** Stable across replays: the same onset (camera, run, first PG frame) always gets the same id. */
export function pgAlertId(camera: string, runId: string, firstPgFrameId: string): string {
  return `pg-${digest(camera, runId, firstPgFrameId)}`;
}

/** Stable across restarts: one silence of a camera-run is named by the last frame seen before it. */
export function silentAlertId(camera: string, runId: string, lastFrameId: string): string {
  return `silent-${digest('camera-silent', camera, runId, lastFrameId)}`;
}
