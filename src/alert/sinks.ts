/**
 * Where alerts go: webhooks, Alertmanager and the early-stop action. A sink only delivers one
 * change and says whether it worked; retries, deadlines and de-duplication are the delivery's
 * job (src/alert/dispatch.ts), and durability the outbox's (the `alerts` topic).
 *
 * Every HTTP delivery carries the alert id: `id` in the body and `Idempotency-Key:
 * <alert id>:<event>` (one key per change: firing, resolved and acknowledged of one alert are
 * three requests). A change may arrive more than once (a restart redelivers what was not
 * confirmed); receivers de-duplicate by that key.
 */
import { spawn } from 'node:child_process';
import type { Alert } from '../bus/messages.js';
import { changeKey, reasonOf, type AlertEventKind } from './change.js';
import { postJson } from './http.js';
import { signWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './signature.js';

export type { AlertEventKind } from './change.js';

export interface AlertSink {
  /** The metric label and log name: webhook, alertmanager, action (a test may bring others). */
  readonly name: string;
  /** Where it delivers, for logs and dead letters (a URL, a command). */
  readonly target?: string;
  wants(kind: AlertEventKind, alert: Alert): boolean;
  /** Resolves when delivered; throws (with a message saying what went wrong) otherwise. `signal` aborts on close. */
  deliver(alert: Alert, kind: AlertEventKind, signal?: AbortSignal): Promise<void>;
}

function checkUrl(url: string, what: string): string {
  try {
    return new URL(url).href;
  } catch {
    throw new Error(`${what}: "${url}" is not a URL; give an http(s):// address`);
  }
}

/** POSTs the alert JSON, signed when a secret is set. Receives firing, resolved and acknowledged. */
export class WebhookSink implements AlertSink {
  readonly name = 'webhook';
  readonly target: string;
  constructor(
    private readonly url: string,
    private readonly secret?: string,
    private readonly timeoutMs = 5000,
    private readonly now: () => number = Date.now,
  ) {
    this.target = checkUrl(url, 'alert webhook');
  }
  wants(): boolean {
    return true;
  }
  async deliver(alert: Alert, kind: AlertEventKind, signal?: AbortSignal): Promise<void> {
    const body = JSON.stringify(alert);
    const headers: Record<string, string> = { 'x-crystalwatch-event': kind, 'x-crystalwatch-alert-id': alert.id, 'idempotency-key': changeKey(alert, kind) };
    if (this.secret) {
      const timestamp = Math.floor(this.now() / 1000);
      headers[TIMESTAMP_HEADER] = String(timestamp);
      headers[SIGNATURE_HEADER] = signWebhook(body, this.secret, timestamp);
    }
    await postJson(this.url, body, headers, this.timeoutMs, 'alert webhook', signal);
  }
}

/** The Alertmanager v2 alert for a crystalwatch alert (a firing one lives for `ttlMs` unless re-sent). */
export function toAlertmanagerAlert(alert: Alert, nowMs: number, ttlMs: number) {
  const endsAt = alert.state === 'resolved' && alert.endsAt ? alert.endsAt : new Date(nowMs + ttlMs).toISOString();
  if (reasonOf(alert) === 'camera-silent') {
    return {
      labels: { alertname: 'CameraSilent', camera: alert.camera, run_id: alert.runId, severity: 'warning', action: 'check-camera' },
      annotations: {
        summary: `No predictions from camera ${alert.camera} (run ${alert.runId}) for ${alert.evidence.silentSeconds ?? '?'} s: check the camera`,
        description: `Last frame ${alert.evidence.lastFrameId ?? '?'} at ${alert.evidence.lastSeenAt ?? '?'}. Check the camera, its drop folder, ingest and classify.`,
        alert_id: alert.id,
      },
      startsAt: alert.startsAt,
      endsAt,
    };
  }
  const frames = alert.evidence.frames;
  const probabilities = frames.map((f) => f.pPG.toFixed(3)).join(', ');
  return {
    labels: { alertname: 'PGOnset', camera: alert.camera, run_id: alert.runId, severity: 'critical', action: 'stop-batch' },
    annotations: {
      summary: `PG (phenylglycine) detected on camera ${alert.camera}, run ${alert.runId}: stop the batch`,
      description: `First PG frame ${alert.evidence.firstPgFrameId}; ${frames.length} frame(s) tripped ${alert.evidence.detector ?? 'the detector'} with P(PG) ${probabilities}.`,
      alert_id: alert.id,
      first_pg_frame: alert.evidence.firstPgFrameId ?? '',
      statistic: alert.evidence.statistic === undefined ? '' : alert.evidence.statistic.toFixed(3),
    },
    startsAt: alert.startsAt,
    endsAt,
  };
}

/**
 * Alertmanager v2 API. Alertmanager resolves an alert by itself once its endsAt passes, so a
 * firing alert is sent with endsAt = now + ttl and re-sent while it fires (src/alert/alertmanager-refresh.ts),
 * what Prometheus does too. Alertmanager de-duplicates by labels; acknowledgements are not sent.
 */
export class AlertmanagerSink implements AlertSink {
  readonly name = 'alertmanager';
  readonly target: string;
  constructor(
    baseUrl: string,
    private readonly ttlMs = 5 * 60_000,
    private readonly timeoutMs = 5000,
    private readonly now: () => number = Date.now,
  ) {
    try {
      this.target = new URL('api/v2/alerts', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).href;
    } catch {
      throw new Error(`alertmanagerUrl: "${baseUrl}" is not a URL; give Alertmanager's base address, e.g. http://127.0.0.1:9093`);
    }
  }
  wants(kind: AlertEventKind): boolean {
    return kind !== 'acknowledged';
  }
  async deliver(alert: Alert, _kind: AlertEventKind, signal?: AbortSignal): Promise<void> {
    await this.post([alert], signal);
  }
  /** One POST with several alerts (the re-send of every firing alert). */
  async post(alerts: Alert[], signal?: AbortSignal): Promise<void> {
    const nowMs = this.now();
    await postJson(this.target, JSON.stringify(alerts.map((a) => toAlertmanagerAlert(a, nowMs, this.ttlMs))), {}, this.timeoutMs, 'alertmanager', signal);
  }
}

/** How long a failed command's stderr may still trickle in after it exited (a background child may hold the pipe forever). */
const STDERR_GRACE_MS = 100;

/**
 * The early-stop action, on a firing PG alert only: a shell command that gets the alert JSON on
 * stdin and CRYSTALWATCH_* variables in its environment (exit 0 = done), or a URL that gets
 * `{"action":"stop-batch","alert":{...}}` POSTed with the `Idempotency-Key` header.
 *
 * One attempt settles within `timeoutMs` whatever the command does: it runs in a process group
 * of its own, which is killed as a whole (SIGKILL) at the timeout or when the stage closes; the
 * attempt ends when the shell exits, not when every process that inherited its stderr has let go
 * of it (a `curl … &` left behind), and a timer around the whole attempt settles it regardless.
 */
export class ActionSink implements AlertSink {
  readonly name = 'action';
  readonly target: string;
  constructor(
    private readonly action: { command?: string; url?: string },
    private readonly timeoutMs = 30_000,
  ) {
    if (!action.command && !action.url) throw new Error('alert action: give actionCommand or actionUrl');
    if (action.url) checkUrl(action.url, 'alert actionUrl');
    this.target = [action.url, action.command].filter(Boolean).join(' and ');
  }
  wants(kind: AlertEventKind, alert: Alert): boolean {
    return kind === 'firing' && reasonOf(alert) === 'pg-onset';
  }
  async deliver(alert: Alert, kind: AlertEventKind, signal?: AbortSignal): Promise<void> {
    const attempt = new AbortController();
    const onClose = () => attempt.abort(new Error(`alert action ${this.target}: aborted (the stage is closing)`));
    if (signal?.aborted) onClose();
    signal?.addEventListener('abort', onClose, { once: true });
    const timer = setTimeout(
      () => attempt.abort(new Error(`alert action ${this.target} did not finish within ${this.timeoutMs} ms; its command's processes were killed`)),
      this.timeoutMs,
    );
    const aborted = new Promise<never>((_resolve, reject) => {
      const fail = () => reject(attempt.signal.reason as Error);
      if (attempt.signal.aborted) fail();
      else attempt.signal.addEventListener('abort', fail, { once: true });
    });
    try {
      await Promise.race([this.attempt(alert, kind, attempt.signal), aborted]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onClose);
      aborted.catch(() => {});
    }
  }
  private async attempt(alert: Alert, kind: AlertEventKind, signal: AbortSignal): Promise<void> {
    if (this.action.url)
      await postJson(
        this.action.url,
        JSON.stringify({ action: alert.action, alert }),
        { 'idempotency-key': changeKey(alert, kind) },
        this.timeoutMs,
        'alert action',
        signal,
      );
    if (this.action.command && !signal.aborted) await this.runCommand(this.action.command, alert, signal);
  }
  private runCommand(command: string, alert: Alert, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], {
        detached: true, // its own process group, so a kill reaches what the command started too
        stdio: ['pipe', 'ignore', 'pipe'],
        env: {
          ...process.env,
          CRYSTALWATCH_ACTION: alert.action,
          CRYSTALWATCH_ALERT_ID: alert.id,
          CRYSTALWATCH_CAMERA: alert.camera,
          CRYSTALWATCH_RUN_ID: alert.runId,
          CRYSTALWATCH_FIRST_PG_FRAME: alert.evidence.firstPgFrameId ?? '',
          CRYSTALWATCH_STARTS_AT: alert.startsAt,
        },
      });
      const killGroup = () => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // the group is gone already
        }
      };
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-500);
      });
      child.stderr.on('error', () => {});
      signal.addEventListener('abort', killGroup, { once: true });
      child.stdin.on('error', () => {}); // a command that does not read stdin closes it early: not a failure
      child.stdin.end(JSON.stringify(alert));
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', killGroup);
        // Let go of the pipes: a background process still holding them must not keep this process alive.
        child.stdin.destroy();
        child.stderr.destroy();
        if (err) reject(err);
        else resolve();
      };
      child.on('error', (err) => settle(new Error(`alert action command "${command}" could not start: ${err.message}`)));
      child.on('exit', (code, killedBy) => {
        if (code === 0) return settle();
        const fail = () =>
          settle(
            new Error(
              `alert action command "${command}" ${killedBy ? `was killed (${killedBy}; timeout ${this.timeoutMs} ms, or the stage closed)` : `exited with ${code}`}: ${stderr.trim() || '(no stderr)'}`,
            ),
          );
        // What it wrote last explains the failure: wait a moment for it, not for whoever else holds the pipe.
        if (child.stderr.readableEnded) return fail();
        const grace = setTimeout(fail, STDERR_GRACE_MS);
        child.stderr.once('close', () => {
          clearTimeout(grace);
          fail();
        });
      });
    });
  }
}
