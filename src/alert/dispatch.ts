/**
 * Fans one alert change out to every sink that wants it (one SinkWorker each) and says when
 * all of them are done with it: the delivery consumer commits the change's `alerts` offset only
 * then. `close()` aborts what is in flight (HTTP requests, action commands, waits) and rejects
 * every unfinished change with DeliveryClosedError, so nothing unfinished is ever committed.
 */
import { silentLogger, type Logger } from '../config/logger.js';
import { checkBackoff, type BackoffOptions } from './backoff.js';
import { DeliveryClosedError, SinkWorker, type DeadLetterWriter, type DeliveryOutcome, type DeliveryRecord } from './sink-worker.js';

export type { DeliveryRecord };
import type { AlertSink } from './sinks.js';

export interface DeliveryOptions extends BackoffOptions {
  /** How long a change is tried on a sink, from when it was written, before it is dead-lettered. Default 24 h. */
  deadlineMs?: number;
}

export interface DispatcherOptions {
  delivery?: DeliveryOptions;
  /** Where a change a sink never took is written; default: only logged (no Kafka). */
  deadLetter?: DeadLetterWriter;
  onOutcome?: (sink: string, outcome: DeliveryOutcome, record?: DeliveryRecord) => void;
  onQueued?: (sink: string, queued: number) => void;
  logger?: Logger;
  now?: () => number;
  random?: () => number;
}

export class AlertDispatcher {
  private readonly workers: SinkWorker[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly deadlineMs: number;
  private readonly backoff: Required<BackoffOptions>;

  constructor(private readonly options: DispatcherOptions = {}) {
    this.backoff = checkBackoff(options.delivery ?? {});
    this.deadlineMs = options.delivery?.deadlineMs ?? 24 * 3600_000;
    if (!(this.deadlineMs > 0)) throw new RangeError(`alert delivery: deadlineMs must be > 0, got ${this.deadlineMs}`);
  }

  get sinks(): AlertSink[] {
    return this.workers.map((w) => w.sink);
  }

  get closed(): boolean {
    return this.abort.signal.aborted;
  }

  addSink(sink: AlertSink): void {
    const logger = this.options.logger ?? silentLogger;
    this.workers.push(
      new SinkWorker(sink, {
        backoff: this.backoff,
        deadlineMs: this.deadlineMs,
        signal: this.abort.signal,
        now: this.options.now ?? Date.now,
        logger,
        random: this.options.random,
        deadLetter:
          this.options.deadLetter ??
          (async (record, s, reason) => {
            logger.error({ sink: s.name, alertId: record.alert.id, reason }, 'alert change not delivered (no dead-letter topic without Kafka)');
          }),
        onOutcome: (name, outcome, record) => this.options.onOutcome?.(name, outcome, record),
        onQueued: (name, queued) => this.options.onQueued?.(name, queued),
      }),
    );
    this.options.onQueued?.(sink.name, 0);
  }

  /** Resolves when every sink that wants the change took it (or dead-lettered it); rejects with DeliveryClosedError on close. */
  dispatch(record: DeliveryRecord): Promise<void> {
    if (this.closed) return Promise.reject(new DeliveryClosedError());
    const frozen: DeliveryRecord = { ...record, alert: structuredClone(record.alert) };
    const all = Promise.all(this.workers.filter((w) => w.sink.wants(frozen.kind, frozen.alert)).map((w) => w.deliver(frozen))).then(() => undefined);
    this.pending.add(all);
    const forget = () => this.pending.delete(all);
    all.then(forget, forget);
    return all;
  }

  /** Resolves when no change is waiting for any sink (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Aborts deliveries in flight; unfinished changes reject with DeliveryClosedError. Idempotent. */
  close(): void {
    this.abort.abort(new DeliveryClosedError());
  }
}

export { DeliveryClosedError };
