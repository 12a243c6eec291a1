/**
 * Where alerts go. Each sink has its own queue and retry loop, so a sink that is down
 * (webhook timing out, Alertmanager restarting) never delays classification or the other
 * sinks: `enqueue` returns at once, deliveries retry with exponential backoff, and the queue
 * is bounded (the oldest waiting delivery is dropped, and counted, when it overflows).
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import type { Producer } from 'kafkajs';
import type { Alert } from '../bus/messages.js';
import { silentLogger, type Logger } from '../config/logger.js';

/** What happened to an alert: the sinks choose which of these they deliver. */
export type AlertEventKind = 'firing' | 'resolved' | 'acknowledged';
export type DeliveryOutcome = 'delivered' | 'retried' | 'failed' | 'dropped';

export interface AlertSink {
  /** The metric label: topic, webhook, websocket, alertmanager, action. */
  readonly name: string;
  wants(kind: AlertEventKind): boolean;
  /** Resolves when delivered; throws (with a message saying what went wrong) otherwise. `signal` aborts on close. */
  deliver(alert: Alert, kind: AlertEventKind, signal?: AbortSignal): Promise<void>;
}

export interface DeliveryOptions {
  /** Deliveries waiting per sink before the oldest is dropped. Default 1000. */
  maxQueue?: number;
  /** Attempts per delivery, the first included. Default 6. */
  maxAttempts?: number;
  /** Wait before the first retry; doubled each retry up to maxDelayMs. Default 250 ms, 30 s. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  onOutcome?: (sink: string, outcome: DeliveryOutcome) => void;
  onQueued?: (sink: string, queued: number) => void;
  logger?: Logger;
}

export class RetryingDelivery {
  private readonly queue: Array<{ alert: Alert; kind: AlertEventKind; attempts: number }> = [];
  private running = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private wakeTimer: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly abort = new AbortController();
  private readonly maxQueue: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly logger: Logger;

  constructor(readonly sink: AlertSink, private readonly options: DeliveryOptions = {}) {
    this.maxQueue = options.maxQueue ?? 1000;
    this.maxAttempts = options.maxAttempts ?? 6;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.logger = options.logger ?? silentLogger;
  }

  get queued(): number {
    return this.queue.length;
  }

  enqueue(alert: Alert, kind: AlertEventKind): void {
    if (this.closed || !this.sink.wants(kind)) return;
    this.queue.push({ alert: structuredClone(alert), kind, attempts: 0 });
    if (this.queue.length > this.maxQueue) {
      // Keep the head (it may be in flight); drop the oldest one waiting behind it.
      const [gone] = this.queue.splice(1, 1);
      this.options.onOutcome?.(this.sink.name, 'dropped');
      this.logger.warn({ sink: this.sink.name, alertId: gone?.alert.id, maxQueue: this.maxQueue }, 'alert delivery queue full: oldest waiting delivery dropped');
    }
    this.options.onQueued?.(this.sink.name, this.queue.length);
    void this.pump();
  }

  /** Resolves when the queue is empty (or the delivery closed). */
  idle(): Promise<void> {
    if (this.queue.length === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retrying; deliveries still queued are abandoned. */
  close(): void {
    this.closed = true;
    this.abort.abort(new Error('alert delivery closed'));
    if (this.timer) clearTimeout(this.timer);
    this.wakeTimer?.();
    this.queue.length = 0;
    this.options.onQueued?.(this.sink.name, 0);
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const head = this.queue[0];
        head.attempts += 1;
        try {
          await this.sink.deliver(head.alert, head.kind, this.abort.signal);
          this.finish(head, 'delivered');
        } catch (err) {
          if (this.closed) break;
          if (head.attempts >= this.maxAttempts) {
            this.logger.error({ sink: this.sink.name, alertId: head.alert.id, attempts: head.attempts, err: (err as Error).message }, 'alert delivery failed; giving up');
            this.finish(head, 'failed');
          } else {
            this.options.onOutcome?.(this.sink.name, 'retried');
            const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (head.attempts - 1));
            this.logger.warn({ sink: this.sink.name, alertId: head.alert.id, attempt: head.attempts, retryInMs: delay, err: (err as Error).message }, 'alert delivery failed; will retry');
            await new Promise<void>((resolve) => {
              this.wakeTimer = resolve;
              this.timer = setTimeout(resolve, delay);
            });
            this.wakeTimer = undefined;
          }
        }
      }
    } finally {
      this.running = false;
      if (this.queue.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private finish(item: { alert: Alert }, outcome: DeliveryOutcome): void {
    if (this.queue[0] === item) this.queue.shift();
    this.options.onOutcome?.(this.sink.name, outcome);
    this.options.onQueued?.(this.sink.name, this.queue.length);
  }
}

/** `sha256=<hex HMAC-SHA256 of the body>`, the value of X-Crystalwatch-Signature. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

async function post(url: string, body: string, headers: Record<string, string>, timeoutMs: number, what: string, signal?: AbortSignal): Promise<void> {
  let response: Response;
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new Error(`${what} ${url} unreachable (${cause})`);
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) throw new Error(`${what} ${url} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
}

/** POSTs the alert JSON, signed when a secret is set. Receives firing, resolved and acknowledged. */
export class WebhookSink implements AlertSink {
  readonly name = 'webhook';
  constructor(private readonly url: string, private readonly secret?: string, private readonly timeoutMs = 5000) {
    try {
      new URL(url);
    } catch {
      throw new Error(`alert webhook: "${url}" is not a URL; give an http(s):// address`);
    }
  }
  wants(): boolean {
    return true;
  }
  async deliver(alert: Alert, kind: AlertEventKind, signal?: AbortSignal): Promise<void> {
    const body = JSON.stringify(alert);
    const headers: Record<string, string> = { 'x-crystalwatch-event': kind };
    if (this.secret) headers['x-crystalwatch-signature'] = signBody(body, this.secret);
    await post(this.url, body, headers, this.timeoutMs, 'alert webhook', signal);
  }
}

/** The Alertmanager v2 alert for a crystalwatch alert (a firing one lives for `ttlMs` unless re-sent). */
export function toAlertmanagerAlert(alert: Alert, nowMs: number, ttlMs: number) {
  const frames = alert.evidence.frames;
  const probabilities = frames.map((f) => f.pPG.toFixed(3)).join(', ');
  return {
    labels: { alertname: 'PGOnset', camera: alert.camera, run_id: alert.runId, severity: 'critical', action: 'stop-batch' },
    annotations: {
      summary: `PG (phenylglycine) detected on camera ${alert.camera}, run ${alert.runId}: stop the batch`,
      description: `First PG frame ${alert.evidence.firstPgFrameId}; ${frames.length} frame(s) tripped ${alert.evidence.detector ?? 'the detector'} with P(PG) ${probabilities}.`,
      alert_id: alert.id,
      first_pg_frame: alert.evidence.firstPgFrameId,
      statistic: alert.evidence.statistic === undefined ? '' : alert.evidence.statistic.toFixed(3),
    },
    startsAt: alert.startsAt,
    endsAt: alert.state === 'resolved' && alert.endsAt ? alert.endsAt : new Date(nowMs + ttlMs).toISOString(),
  };
}

/**
 * Alertmanager v2 API. Alertmanager resolves an alert by itself once its endsAt passes, so a
 * firing alert is sent with endsAt = now + ttl and re-sent by the stage while it fires
 * (what Prometheus does too).
 */
export class AlertmanagerSink implements AlertSink {
  readonly name = 'alertmanager';
  private readonly endpoint: string;
  constructor(baseUrl: string, private readonly ttlMs = 5 * 60_000, private readonly timeoutMs = 5000, private readonly now: () => number = Date.now) {
    try {
      this.endpoint = new URL('api/v2/alerts', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).href;
    } catch {
      throw new Error(`alertmanagerUrl: "${baseUrl}" is not a URL; give Alertmanager's base address, e.g. http://127.0.0.1:9093`);
    }
  }
  wants(kind: AlertEventKind): boolean {
    return kind !== 'acknowledged';
  }
  async deliver(alert: Alert, _kind: AlertEventKind, signal?: AbortSignal): Promise<void> {
    await post(this.endpoint, JSON.stringify([toAlertmanagerAlert(alert, this.now(), this.ttlMs)]), {}, this.timeoutMs, 'alertmanager', signal);
  }
}

/**
 * The early-stop action, on firing only: a shell command that gets the alert JSON on stdin and
 * CRYSTALWATCH_* variables in its environment (exit 0 = done), or a URL that gets
 * `{"action":"stop-batch","alert":{...}}` POSTed.
 */
export class ActionSink implements AlertSink {
  readonly name = 'action';
  constructor(private readonly target: { command?: string; url?: string }, private readonly timeoutMs = 30_000) {
    if (!target.command && !target.url) throw new Error('alert action: give actionCommand or actionUrl');
  }
  wants(kind: AlertEventKind): boolean {
    return kind === 'firing';
  }
  async deliver(alert: Alert, _kind: AlertEventKind, signal?: AbortSignal): Promise<void> {
    if (this.target.url) await post(this.target.url, JSON.stringify({ action: alert.action, alert }), {}, this.timeoutMs, 'alert action', signal);
    if (this.target.command) await this.runCommand(this.target.command, alert, signal);
  }
  private runCommand(command: string, alert: Alert, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], {
        stdio: ['pipe', 'ignore', 'pipe'],
        env: {
          ...process.env,
          CRYSTALWATCH_ACTION: alert.action,
          CRYSTALWATCH_ALERT_ID: alert.id,
          CRYSTALWATCH_CAMERA: alert.camera,
          CRYSTALWATCH_RUN_ID: alert.runId,
          CRYSTALWATCH_FIRST_PG_FRAME: alert.evidence.firstPgFrameId,
          CRYSTALWATCH_STARTS_AT: alert.startsAt,
        },
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-500);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs);
      const onAbort = () => child.kill('SIGKILL');
      signal?.addEventListener('abort', onAbort, { once: true });
      child.stdin.on('error', () => {}); // a command that does not read stdin closes it early: not a failure
      child.stdin.end(JSON.stringify(alert));
      child.on('error', (err) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(new Error(`alert action command "${command}" could not start: ${err.message}`));
      });
      child.on('close', (code, killedBy) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (code === 0) resolve();
        else reject(new Error(`alert action command "${command}" ${killedBy ? `was killed (${killedBy}; timeout ${this.timeoutMs} ms, or the stage closed)` : `exited with ${code}`}: ${stderr.trim() || '(no stderr)'}`));
      });
    });
  }
}

/** The `alerts` topic: key = camera, value = the alert JSON (every state change). */
export class TopicSink implements AlertSink {
  readonly name = 'topic';
  constructor(private readonly producer: Producer, private readonly topic: string) {}
  wants(): boolean {
    return true;
  }
  async deliver(alert: Alert): Promise<void> {
    await this.producer.send({ topic: this.topic, messages: [{ key: alert.camera, value: JSON.stringify(alert) }] });
  }
}
