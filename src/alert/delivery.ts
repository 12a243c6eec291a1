/**
 * The delivery consumer: reads the `alerts` topic (the outbox) in its own consumer group and
 * hands every change to the sinks. A record's offset is committed only once every sink took it
 * or dead-lettered it at its deadline, so a change not yet delivered when the process stops
 * (crash, SIGKILL, SIGTERM) is read again at the next start and delivered then.
 *
 * kafkajs's own commits are off (`autoCommit: false`); `resolveOffset` only moves the fetch
 * position, so a sink that is down does not stop the others from receiving later changes.
 */
import type { Consumer, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { createConsumer } from '../bus/kafka.js';
import { deadLetterRecord } from '../bus/dead-letter.js';
import { decodeAlert, headerString } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import type { Logger } from '../config/logger.js';
import { sleep } from './backoff.js';
import type { AlertEventKind } from './change.js';
import { DeliveryClosedError, type AlertDispatcher } from './dispatch.js';
import type { AlertMetrics } from './metrics.js';
import { OffsetTracker } from './offset-tracker.js';
import { settleWithin } from '../config/stage-lifecycle.js';
import type { DeadLetterWriter, DeliveryRecord } from './sink-worker.js';

export const DELIVERY_STAGE = 'alert-delivery';
const EVENTS = new Set<AlertEventKind>(['firing', 'resolved', 'acknowledged']);

export interface AlertDeliveryOptions {
  kafka: Kafka;
  topics: Topics;
  groupId: string;
  dispatcher: AlertDispatcher;
  /** Writes dead letters (malformed records, changes past their deadline); connected by the caller. */
  producer: () => Producer | undefined;
  metrics: AlertMetrics;
  logger: Logger;
  /** Changes waiting for sinks before fetching pauses. Default 1000. */
  maxPending?: number;
  /** Longest close() waits for kafkajs to leave the group. Default 800 ms. */
  closeTimeoutMs?: number;
}

export class AlertDelivery {
  private consumer: Consumer | undefined;
  private readonly tracker = new OffsetTracker();
  private readonly commits = new Map<number, Promise<void>>();
  private readonly closing = new AbortController();
  private closed: Promise<void> | undefined;

  constructor(private readonly options: AlertDeliveryOptions) {}

  /** The dead-letter writer for the dispatcher: one record per change and sink that missed its deadline. */
  static deadLetterWriter(topics: Topics, producer: () => Producer | undefined, metrics: AlertMetrics, logger: Logger): DeadLetterWriter {
    return async (record, sink, reason) => {
      const p = producer();
      if (!p) {
        // Without Kafka (observePrediction on a stage never started) there is no topic to write to.
        logger.error(
          { sink: sink.name, alertId: record.alert.id, event: record.kind, reason },
          'alert change not delivered; no dead-letter topic without Kafka',
        );
        return;
      }
      const letter = deadLetterRecord({
        sourceTopic: record.source?.topic ?? topics.alerts,
        ...(record.source ? { partition: record.source.partition, offset: record.source.offset } : {}),
        reason,
        stage: DELIVERY_STAGE,
        key: record.alert.camera,
        value: JSON.stringify(record.alert),
        headers: { event: record.kind, sink: sink.name, 'alert-id': record.alert.id },
      });
      await p.send({ topic: topics.deadLetter, acks: -1, messages: [letter] });
      metrics.deadLetter.inc({ stage: DELIVERY_STAGE, reason: 'delivery-deadline' });
    };
  }

  /** Joins the group and consumes; a close() meanwhile stops it at its next step, disconnected. */
  async start(): Promise<void> {
    if (this.consumer || this.closing.signal.aborted) return;
    const { kafka, topics, groupId } = this.options;
    const consumer = createConsumer(kafka, groupId, { maxMessageBytes: 1024 * 1024 });
    this.consumer = consumer;
    // A rebalance hands partitions out afresh; what this member tracked comes again from the committed offsets.
    consumer.on(consumer.events.GROUP_JOIN, () => this.tracker.reset());
    await consumer.connect();
    if (await this.closedMeanwhile(consumer)) return;
    await consumer.subscribe({ topics: [topics.alerts], fromBeginning: true });
    if (await this.closedMeanwhile(consumer)) return;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        for (const message of batch.messages) {
          if (!isRunning() || isStale() || this.closing.signal.aborted) return;
          while (this.tracker.pending >= (this.options.maxPending ?? 1000) && isRunning() && !this.closing.signal.aborted) {
            await sleep(100, this.closing.signal);
            await heartbeat();
          }
          const generation = this.tracker.track(batch.partition, message.offset);
          resolveOffset(message.offset);
          if (generation !== undefined) await this.handle(batch.topic, batch.partition, message, generation);
        }
        await heartbeat();
      },
    });
  }

  /** Stops fetching and leaves the group without committing what is unfinished (the dispatcher is closed by the stage). */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing.abort();
      const consumer = this.consumer;
      if (!consumer) return;
      const left = await settleWithin(consumer.disconnect(), this.options.closeTimeoutMs ?? 800);
      if (!left) this.options.logger.warn({ groupId: this.options.groupId }, 'alert delivery consumer still disconnecting; not waiting for it');
    })();
    return this.closed;
  }

  /** close() came while start() was connecting: let go of the consumer (close() may have found it mid-connect). */
  private async closedMeanwhile(consumer: Consumer): Promise<boolean> {
    if (!this.closing.signal.aborted) return false;
    await settleWithin(consumer.disconnect(), this.options.closeTimeoutMs ?? 800);
    return true;
  }

  private async handle(topic: string, partition: number, message: KafkaMessage, generation: number): Promise<void> {
    const finish = () => this.finish(topic, partition, message.offset, generation);
    const decoded = decodeAlert(message.value);
    if (!decoded.ok) {
      await this.deadLetterMalformed(topic, partition, message, decoded.reason);
      finish();
      return;
    }
    const header = headerString(message.headers, 'event') as AlertEventKind | undefined;
    const kind: AlertEventKind = header && EVENTS.has(header) ? header : decoded.value.state;
    const record: DeliveryRecord = { alert: decoded.value, kind, writtenAtMs: Number(message.timestamp), source: { topic, partition, offset: message.offset } };
    this.options.dispatcher.dispatch(record).then(finish, (err: Error) => {
      if (!(err instanceof DeliveryClosedError))
        this.options.logger.error({ err: err.message, alertId: record.alert.id }, 'alert delivery failed unexpectedly; the change stays uncommitted');
    });
  }

  private finish(topic: string, partition: number, offset: string, generation: number): void {
    const next = this.tracker.complete(partition, offset, generation);
    if (next === undefined || this.closing.signal.aborted) return;
    const consumer = this.consumer as Consumer;
    const previous = this.commits.get(partition) ?? Promise.resolve();
    const commit = previous
      .then(() => consumer.commitOffsets([{ topic, partition, offset: next }]))
      .catch((err: Error) => {
        // A rebalance (or a broker restart) refused it: the records come again and are de-duplicated per sink.
        this.options.logger.warn({ partition, offset: next, err: err.message }, 'could not commit delivered alert offsets; they will be redelivered');
      });
    this.commits.set(partition, commit);
  }

  private async deadLetterMalformed(topic: string, partition: number, message: KafkaMessage, reason: string): Promise<void> {
    const { topics, metrics, logger } = this.options;
    metrics.deadLetter.inc({ stage: DELIVERY_STAGE, reason: 'invalid-alert' });
    logger.warn({ topic, partition, offset: message.offset, reason }, 'malformed alert record sent to dead-letter');
    const letter = deadLetterRecord({
      sourceTopic: topic,
      partition,
      offset: message.offset,
      reason,
      stage: DELIVERY_STAGE,
      key: message.key,
      value: message.value,
      headers: message.headers,
    });
    await this.options
      .producer()
      ?.send({ topic: topics.deadLetter, acks: -1, messages: [letter] })
      .catch((err: Error) => logger.error({ err: err.message }, 'could not write to dead-letter; the malformed alert record is skipped'));
  }
}
