/**
 * Alertmanager forgets a firing alert once its endsAt passes, so every firing alert is re-sent
 * every `everyMs` (as Prometheus does), with endsAt = now + 5 × everyMs. The re-send is not an
 * alert change: it is not on the outbox, and a failed one is simply repeated at the next tick.
 */
import type { Alert } from '../bus/messages.js';
import type { Logger } from '../config/logger.js';
import type { AlertmanagerSink } from './sinks.js';

export class AlertmanagerRefresh {
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly sink: AlertmanagerSink,
    private readonly firing: () => Alert[],
    private readonly everyMs: number,
    private readonly logger: Logger,
  ) {
    if (!(everyMs > 0)) throw new RangeError(`alertmanagerResendMs must be > 0, got ${everyMs}`);
  }

  start(): void {
    if (this.timer || this.abort.signal.aborted) return;
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.abort.abort();
  }

  private async tick(): Promise<void> {
    const alerts = this.firing();
    if (alerts.length === 0) return;
    await this.sink
      .post(alerts, this.abort.signal)
      .catch((err: Error) => this.logger.warn({ err: err.message, alerts: alerts.length }, 'alertmanager re-send failed; repeated at the next tick'));
  }
}
