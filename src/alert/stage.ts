/**
 * The alert stage: consumes `predictions`, runs the alert lifecycle (src/alert/lifecycle.ts),
 * writes every change to the `alerts` topic (the outbox) before committing the predictions that
 * raised it, and delivers the changes from that topic to the sinks (src/alert/delivery.ts).
 * At start it rebuilds its alerts and detectors from Kafka (src/alert/state-topic.ts).
 *
 * Events: 'alert' (Alert) on every change (fired, resolved, acknowledged), once the change is in
 * the outbox (after the write when it comes from `predictions`). A listener that throws is logged
 * and counted (`crystalwatch_alert_deliveries_total{sink="listener",outcome="failed"}`); it never
 * costs the change its place in the outbox, nor the other listeners their call.
 */
import type { Consumer, Message, Producer } from 'kafkajs';
import { KnownCameras, unknownCameraCounter } from '../bus/known-cameras.js';
import { createConsumer, createProducer } from '../bus/kafka.js';
import { deadLetterRecord } from '../bus/dead-letter.js';
import { decodePrediction, type Alert, type Prediction } from '../bus/messages.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { StageClosedError, StageLifecycle } from '../config/stage-lifecycle.js';
import { AlertmanagerRefresh } from './alertmanager-refresh.js';
import { AlertAnnouncer } from './announce.js';
import { reasonOf, type AlertChange } from './change.js';
import { AlertDelivery } from './delivery.js';
import { AlertDispatcher } from './dispatch.js';
import { watchGroupMembers } from './group-members.js';
import { AlertLifecycle, type RecordPosition } from './lifecycle.js';
import { createAlertMetrics, type AlertMetrics } from './metrics.js';
import { AlertOutbox } from './outbox.js';
import { settleWithin } from '../config/stage-lifecycle.js';
import { ActionSink, AlertmanagerSink, WebhookSink, type AlertSink } from './sinks.js';
import { alertStateTopic, ensureAlertTopics, loadAlertState } from './state-topic.js';
import type { AlertOptions } from './options.js';

export type { AlertOptions, AlertSinksOptions } from './options.js';

const STAGE = 'alert';
/** How long close() waits for a start() in flight to reach its next step and stop there. */
const START_WAIT_MS = 1000;

/** start() after close(), or close() while start() was under way: nothing is consumed. */
export class AlertStageClosedError extends StageClosedError {
  override readonly name: string = 'AlertStageClosedError';
  constructor() {
    super(STAGE, 'start()');
    this.message = 'alert stage: closed before start() finished; it consumes nothing (a new process start brings it back)';
  }
}

/** Test-only crash point: SIGKILL right after a flush that wrote an alert change, before its offsets are committed. */
const KILL_AFTER_OUTBOX = process.env.CRYSTALWATCH_ALERT_FAULT === 'kill-after-outbox';

export class AlertStage extends StageLifecycle {
  readonly metrics: AlertMetrics;
  private readonly announcer: AlertAnnouncer;
  private readonly lifecycle: AlertLifecycle;
  private readonly dispatcher: AlertDispatcher;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly stateTopic: string;
  private alertmanager: AlertmanagerSink | undefined;
  private refresh: AlertmanagerRefresh | undefined;
  private producer: Producer | undefined;
  private outbox: AlertOutbox | undefined;
  private consumer: Consumer | undefined;
  private delivery: AlertDelivery | undefined;
  private timer: NodeJS.Timeout | undefined;
  private outboxFailing = false;

  constructor(private readonly options: AlertOptions) {
    super({ stage: STAGE, startWaitMs: START_WAIT_MS });
    this.logger = (options.logger ?? silentLogger).child({ stage: STAGE });
    this.now = options.now ?? Date.now;
    this.metrics = createAlertMetrics(options.registry);
    this.stateTopic = alertStateTopic(options.topics);
    this.lifecycle = new AlertLifecycle({
      detector: options.detector,
      resolveAfterCleanFrames: options.resolveAfterCleanFrames,
      cleanBelow: options.cleanBelow,
      dedupCapacity: options.dedupCapacity,
      maxRuns: options.maxRuns,
      silentAfterMs: options.silentAfterMs,
      snapshotIntervalMs: options.snapshotIntervalMs,
    });
    this.announcer = new AlertAnnouncer({
      emitter: this,
      book: this.lifecycle.book,
      metrics: this.metrics,
      stage: STAGE,
      logger: this.logger,
      publish: options.publish,
      known: new KnownCameras({ cameras: options.cameras, maxCameras: options.maxCameras }),
      unknownCameras: unknownCameraCounter(options.registry),
    });
    this.dispatcher = new AlertDispatcher({
      delivery: options.delivery,
      deadLetter: AlertDelivery.deadLetterWriter(options.topics, () => this.producer, this.metrics, this.logger),
      onOutcome: (sink, outcome, record) => {
        this.metrics.deliveries.inc({ sink, outcome });
        if (record && (outcome === 'delivered' || outcome === 'dead-lettered')) options.onDelivery?.({ sink, outcome, alert: record.alert, kind: record.kind });
      },
      onQueued: (sink, queued) => this.metrics.queued.set({ sink }, queued),
      logger: this.logger,
      now: this.now,
    });
    const sinks = options.sinks ?? {};
    const timeoutMs = options.delivery?.timeoutMs ?? 5000;
    for (const hook of sinks.webhooks ?? []) this.addSink(new WebhookSink(hook.url, hook.secret, timeoutMs, this.now));
    if (sinks.alertmanagerUrl) {
      const resendMs = options.alertmanagerResendMs ?? 60_000;
      this.alertmanager = new AlertmanagerSink(sinks.alertmanagerUrl, 5 * resendMs, timeoutMs, this.now);
      this.addSink(this.alertmanager);
      this.refresh = new AlertmanagerRefresh(this.alertmanager, () => this.lifecycle.book.firing(), resendMs, this.logger);
    }
    if (sinks.actionCommand || sinks.actionUrl) this.addSink(new ActionSink({ command: sinks.actionCommand, url: sinks.actionUrl }));
  }

  /** Adds a sink (tests and the app may bring their own), before start(). */
  addSink(sink: AlertSink): void {
    this.dispatcher.addSink(sink);
  }

  /** Restores the saved state, then consumes `predictions` and delivers from `alerts`. */
  protected async open(): Promise<void> {
    const { kafka, topics } = this.options;
    const started = this.now();
    this.producer = createProducer(kafka);
    await this.producer.connect();
    await this.stopIfClosed(this.producer);
    this.outbox = new AlertOutbox(
      this.producer,
      { alerts: topics.alerts, state: this.stateTopic, deadLetter: topics.deadLetter },
      {
        logger: this.logger,
        onDropped: (kind, reason, records) => this.metrics.outboxDropped.inc({ kind, reason }, records),
      },
    );
    await ensureAlertTopics(kafka, { alerts: topics.alerts, state: this.stateTopic }, this.options.partitions ?? 3, this.logger);
    await this.stopIfClosed();
    const groupId = this.options.groupId ?? 'crystalwatch-alert';
    this.delivery = new AlertDelivery({
      kafka,
      topics,
      groupId: this.options.deliveryGroupId ?? `${groupId}-delivery`,
      dispatcher: this.dispatcher,
      producer: () => this.producer,
      metrics: this.metrics,
      logger: this.logger,
    });
    await Promise.all([this.delivery.start(), this.restoreThenConsume(groupId)]);
    await this.stopIfClosed();
    this.refresh?.start();
    const silentAfter = this.options.silentAfterMs ?? 0;
    this.timer = setInterval(() => this.tick(), silentAfter > 0 ? Math.min(1000, Math.max(100, silentAfter / 10)) : 1000);
    this.timer.unref();
    this.logger.info(
      { detector: this.lifecycle.detectorDescription, sinks: this.dispatcher.sinks.map((s) => s.name), ms: this.now() - started },
      'alert stage consuming',
    );
  }

  private async restoreThenConsume(groupId: string): Promise<void> {
    const { kafka, topics } = this.options;
    const saved = await loadAlertState(kafka, { alerts: topics.alerts, state: this.stateTopic }, `${groupId}-restore`);
    await this.stopIfClosed();
    const restored = this.lifecycle.restore(saved.alerts, saved.snapshots, this.now());
    for (const camera of this.lifecycle.cameras) this.announcer.setGauges(camera, true);
    this.logger.info({ ...restored, alerts: saved.alerts.length, records: saved.records, skipped: saved.skipped }, 'alert state restored from Kafka');

    const consumer = createConsumer(kafka, groupId, { maxMessageBytes: 1024 * 1024 });
    this.consumer = consumer;
    watchGroupMembers(consumer, groupId, topics.predictions, this.logger);
    await consumer.connect();
    await this.stopIfClosed(consumer);
    await consumer.subscribe({ topics: [topics.predictions], fromBeginning: this.options.fromBeginning ?? true });
    await this.stopIfClosed(consumer);
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const changes: AlertChange[] = [];
        const letters: Message[] = [];
        let last: string | undefined;
        for (const message of batch.messages) {
          if (!isRunning() || isStale()) break;
          last = message.offset;
          const decoded = decodePrediction(message.value);
          if (decoded.ok) {
            changes.push(...this.observe(decoded.value, Number(message.timestamp), { partition: batch.partition, offset: message.offset }));
            continue;
          }
          this.metrics.deadLetter.inc({ stage: STAGE, reason: 'invalid-prediction' });
          this.logger.warn(
            { topic: batch.topic, partition: batch.partition, offset: message.offset, reason: decoded.reason },
            'malformed prediction sent to dead-letter',
          );
          letters.push(
            deadLetterRecord({
              sourceTopic: batch.topic,
              partition: batch.partition,
              offset: message.offset,
              reason: decoded.reason,
              stage: STAGE,
              key: message.key,
              value: message.value,
              headers: message.headers,
              at: new Date(this.now()),
            }),
          );
        }
        if (last === undefined) return;
        const outbox = this.outbox as AlertOutbox;
        outbox.add(changes, this.lifecycle.snapshots(this.now()), letters);
        // The changes are durable before the predictions that raised them are committed; a failed
        // write throws, kafkajs fetches the batch again (its frames are known: nothing is counted
        // twice) and the next flush retries what this one held. They are announced after the
        // write either way: they are in the outbox, and the frames that raised them are not seen again.
        try {
          await outbox.flush();
        } finally {
          this.metrics.outboxPending.set(outbox.pending);
          this.announcer.announce(changes);
        }
        if (KILL_AFTER_OUTBOX && changes.length > 0) process.kill(process.pid, 'SIGKILL');
        if (isStale()) return;
        resolveOffset(last);
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() }]);
        await heartbeat();
      },
    });
  }

  /**
   * Handles one prediction without Kafka (tests, benchmarks, an app that has the predictions):
   * returns the PG alert of its camera-run that it fired or resolved, if any. After start() the
   * changes go to the outbox as well. `producedAtMs` starts the prediction-to-alert clock.
   */
  observePrediction(prediction: Prediction, producedAtMs?: number): Alert | undefined {
    const changes = this.observe(prediction, producedAtMs);
    this.persist(changes);
    this.announcer.announce(changes);
    const own = changes.find((c) => c.alert.camera === prediction.camera && c.alert.runId === prediction.runId && reasonOf(c.alert) === 'pg-onset');
    return own ? structuredClone(own.alert) : undefined;
  }

  /** Every alert kept (firing ones always, the 1000 others changed most recently), newest first. */
  list(): Alert[] {
    return this.lifecycle.book.list();
  }

  /**
   * Acknowledges a firing alert; resolves once the acknowledgement is on the `alerts` topic
   * (durable: a crash right after the answer does not lose it), or undefined for an unknown id.
   */
  async acknowledge(id: string, by?: string, comment?: string): Promise<Alert | undefined> {
    const result = this.lifecycle.acknowledge(id, by, this.now(), comment);
    if (!result) return undefined;
    if (result.change) {
      this.logger.info({ alertId: id, by }, 'alert acknowledged');
      this.persist([result.change]);
      this.announcer.announce([result.change]);
      if (this.outbox && this.outbox.pending > 0) await this.outbox.flush();
    }
    return structuredClone(result.alert);
  }

  /** Resolves when nothing waits in this process: outbox written, no change waiting for a sink. */
  async idle(): Promise<void> {
    if (this.outbox && this.outbox.pending > 0) await this.outbox.flush();
    await this.dispatcher.idle();
  }

  /**
   * Stops within about a second: aborts deliveries in flight, stops both consumers at once
   * without committing what was not delivered (it is delivered after the next start), and
   * writes what the outbox still holds if Kafka takes it at once. Idempotent (StageLifecycle's close()):
   * this part runs the moment close() is called, shut() below after a start() under way settled.
   */
  protected override interrupt(): void {
    clearInterval(this.timer);
    this.refresh?.close();
    this.dispatcher.close();
  }

  // StageLifecycle runs this once close() has waited (START_WAIT_MS at most) for a start() under way:
  // that start stops at its next step; what it connected by then is let go here (and what it
  // connects after the wait, it lets go itself).
  protected async shut(): Promise<void> {
    await Promise.all([
      this.delivery?.close(),
      this.consumer
        ? settleWithin(this.consumer.disconnect(), 700).then((ok) => ok || this.logger.warn('alert consumer still disconnecting; not waiting for it'))
        : undefined,
    ]);
    if (this.outbox && this.outbox.pending > 0) await settleWithin(this.outbox.flush(), 150);
    if (this.producer) await settleWithin(this.producer.disconnect(), 150);
  }

  protected override closedError(): Error {
    return new AlertStageClosedError();
  }

  /** Between the steps of start(): after close() it stops there, letting go of what the last step connected. */
  private async stopIfClosed(connected?: { disconnect(): Promise<void> }): Promise<void> {
    if (!this.closeRequested) return;
    if (connected) await settleWithin(connected.disconnect(), 700);
    throw new AlertStageClosedError();
  }

  /** The lifecycle's decision on one prediction; the caller puts the changes in the outbox, then announces them. */
  private observe(prediction: Prediction, producedAtMs: number | undefined, position?: RecordPosition): AlertChange[] {
    const receivedAt = this.now();
    const seen = this.lifecycle.observe(prediction, receivedAt, position);
    if (seen.skipped === 'duplicate') this.metrics.duplicates.inc({ stage: STAGE });
    if (seen.newCamera) this.announcer.setGauges(prediction.camera, true);
    if (seen.fired) this.metrics.predictionToAlert.observe(Math.max(0, this.now() - (producedAtMs ?? receivedAt)) / 1000);
    return seen.changes;
  }

  /** The one timer: camera-silent checks, aged state snapshots, and a retry of an outbox write that failed. */
  private tick(): void {
    const changes = this.lifecycle.checkSilence(this.now());
    this.persist(changes);
    this.announcer.announce(changes);
  }

  /** To the outbox once started (flushed in the background), straight to the sinks before. */
  private persist(changes: AlertChange[]): void {
    const outbox = this.outbox;
    if (!outbox) {
      for (const { alert, kind } of changes) this.dispatcher.dispatch({ alert, kind, writtenAtMs: this.now() }).catch(() => {});
      return;
    }
    outbox.add(changes, this.lifecycle.snapshots(this.now()));
    if (outbox.pending === 0) return;
    outbox.flush().then(
      () => {
        this.metrics.outboxPending.set(outbox.pending);
        if (this.outboxFailing) this.logger.info('alert outbox written again');
        this.outboxFailing = false;
      },
      (err: Error) => {
        this.metrics.outboxPending.set(outbox.pending);
        // Once per outage, not once a second: crystalwatch_alert_outbox_pending shows how long it lasts.
        if (!this.outboxFailing) this.logger.error({ err: err.message }, 'alert outbox write failed; retried every second');
        this.outboxFailing = true;
      },
    );
  }
}
