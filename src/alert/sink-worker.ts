/**
 * One sink's deliveries, in order: each change is tried until the sink takes it or the change's
 * deadline passes (then it is dead-lettered), with exponential backoff between attempts. A sink
 * that is down holds back only its own queue; the other sinks go on.
 *
 * The changes this sink took are remembered (by `<alert id>:<event>`), so a change that comes
 * again in this process (the outbox wrote it twice, or a rebalance redelivered it) is not sent
 * twice. Across restarts a change may be sent again; receivers de-duplicate by that key.
 */
import type { Alert } from '../bus/messages.js';
import { RecentKeys } from '../bus/recent-keys.js';
import type { Logger } from '../config/logger.js';
import { backoffDelay, sleep, type BackoffOptions } from './backoff.js';
import { changeKey, type AlertEventKind } from './change.js';
import type { AlertSink } from './sinks.js';

export type DeliveryOutcome = 'delivered' | 'retried' | 'dead-lettered';

export interface DeliveryRecord {
  alert: Alert;
  kind: AlertEventKind;
  /** When the change was written (its `alerts` record timestamp); the deadline counts from here. */
  writtenAtMs: number;
  /** Where the change lies on the `alerts` topic, when it came from there. */
  source?: { topic: string; partition: number; offset: string };
}

/** Writes the dead letter of a change a sink never took; throws when it could not (the worker tries again). */
export type DeadLetterWriter = (record: DeliveryRecord, sink: AlertSink, reason: string) => Promise<void>;

export interface SinkWorkerOptions {
  backoff: Required<BackoffOptions>;
  deadlineMs: number;
  signal: AbortSignal;
  now: () => number;
  logger: Logger;
  deadLetter: DeadLetterWriter;
  /** Every outcome; a change that reached its end (delivered, dead-lettered) comes with its record. A throw is logged, never a delivery failure. */
  onOutcome: (sink: string, outcome: DeliveryOutcome, record?: DeliveryRecord) => void;
  onQueued: (sink: string, queued: number) => void;
  random?: () => number;
}

interface Job {
  record: DeliveryRecord;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Rejects what was still waiting when the delivery closed: it stays uncommitted for the next start. */
export class DeliveryClosedError extends Error {
  override name = 'DeliveryClosedError';
  constructor() {
    super('alert delivery closed before the sink took the change; it is delivered again after a restart');
  }
}

export class SinkWorker {
  private readonly queue: Job[] = [];
  private readonly delivered = new RecentKeys(10_000);
  private running = false;

  constructor(
    readonly sink: AlertSink,
    private readonly options: SinkWorkerOptions,
  ) {
    options.signal.addEventListener('abort', () => this.rejectAll(), { once: true });
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Resolves once the sink took the change, or it was dead-lettered; rejects with DeliveryClosedError on close. */
  deliver(record: DeliveryRecord): Promise<void> {
    if (this.options.signal.aborted) return Promise.reject(new DeliveryClosedError());
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      this.queuedChanged();
      this.pump().catch((err: Error) =>
        this.options.logger.error(
          { sink: this.sink.name, err: err.message },
          'alert sink queue stopped unexpectedly; its changes stay uncommitted until a restart',
        ),
      );
    });
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let job = this.queue[0]; job !== undefined && !this.options.signal.aborted; job = this.queue[0]) {
        await this.handle(job.record);
        if (this.options.signal.aborted) return; // rejectAll() settled it
        this.queue.shift();
        this.queuedChanged();
        job.resolve();
      }
    } finally {
      this.running = false;
    }
  }

  private async handle(record: DeliveryRecord): Promise<void> {
    const { signal, now, logger } = this.options;
    const key = changeKey(record.alert, record.kind);
    if (this.delivered.has(key)) return;
    const deadline = record.writtenAtMs + this.options.deadlineMs;
    const context = { sink: this.sink.name, target: this.sink.target, alertId: record.alert.id, event: record.kind };
    for (let attempt = 1; !signal.aborted; attempt += 1) {
      let failure: Error | undefined;
      try {
        await this.sink.deliver(record.alert, record.kind, signal);
      } catch (err) {
        failure = err as Error;
      }
      // Only the sink's own answer decides; what the hooks do after it is theirs (notify() guards them).
      if (failure === undefined) {
        this.delivered.add(key);
        this.notify('delivered', record);
        if (attempt > 1) logger.info({ ...context, attempts: attempt }, 'alert delivered after retries');
        return;
      }
      if (signal.aborted) return;
      const left = deadline - now();
      if (left <= 0) {
        const reason = `${this.sink.name} ${this.sink.target ?? ''} did not take ${key} within the delivery deadline of ${Math.round(this.options.deadlineMs / 1000)} s (${attempt} attempts; last error: ${failure.message})`;
        logger.error({ ...context, attempts: attempt, err: failure.message }, 'alert delivery deadline passed: the change goes to dead-letter');
        await this.writeDeadLetter(record, reason);
        return;
      }
      const wait = Math.min(left, backoffDelay(attempt, this.options.backoff, this.options.random));
      this.notify('retried');
      // Every attempt is counted; the log says so at attempts 1, 2, 4, 8, … (a day-long outage is not 3,000 lines).
      if ((attempt & (attempt - 1)) === 0) logger.warn({ ...context, attempt, retryInMs: wait, err: failure.message }, 'alert delivery failed; will retry');
      await sleep(wait, signal);
    }
  }

  private async writeDeadLetter(record: DeliveryRecord, reason: string): Promise<void> {
    for (let attempt = 1; !this.options.signal.aborted; attempt += 1) {
      let failure: Error | undefined;
      try {
        await this.options.deadLetter(record, this.sink, reason);
      } catch (err) {
        failure = err as Error;
      }
      if (failure === undefined) {
        this.notify('dead-lettered', record);
        return;
      }
      this.options.logger.error(
        { sink: this.sink.name, alertId: record.alert.id, err: failure.message },
        'could not write the alert dead letter; will retry (the change stays uncommitted)',
      );
      await sleep(backoffDelay(attempt, this.options.backoff, this.options.random), this.options.signal);
    }
  }

  /** The outcome hook (metrics, the public onDelivery option), guarded: a throw there is a bug to log, not a failed delivery. */
  private notify(outcome: DeliveryOutcome, record?: DeliveryRecord): void {
    try {
      this.options.onOutcome(this.sink.name, outcome, record);
    } catch (err) {
      this.options.logger.error(
        { sink: this.sink.name, outcome, alertId: record?.alert.id, err: (err as Error).message },
        'alert delivery hook (onOutcome / onDelivery) threw; the outcome stands',
      );
    }
  }

  private queuedChanged(): void {
    try {
      this.options.onQueued(this.sink.name, this.queue.length);
    } catch (err) {
      this.options.logger.error({ sink: this.sink.name, err: (err as Error).message }, 'alert delivery hook onQueued threw');
    }
  }

  private rejectAll(): void {
    for (const job of this.queue.splice(0)) job.reject(new DeliveryClosedError());
    this.queuedChanged();
  }
}
