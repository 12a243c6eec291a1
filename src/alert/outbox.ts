/**
 * The outbox writer. Every alert change goes to the `alerts` topic (key = camera, value = the
 * alert JSON, header `event` = firing | resolved | acknowledged), the camera-runs it touched to
 * the state topic, and dead letters of malformed predictions to `dead-letter`, with acks from
 * every in-sync replica on the idempotent producer. The alert stage commits the `predictions`
 * offsets that raised a change only after `flush()` resolved: a change is durable before its
 * cause is forgotten.
 *
 * Alerts are sent first, then state records, then dead letters, each in requests of their own
 * (at most MAX_REQUEST_BYTES), so nothing but an alert can hold an alert back. A flush that
 * fails keeps what was not written, in order, and the next flush sends it again (alert ids are
 * stable: a change written twice is one change to its receivers). A state record or dead letter
 * that Kafka refuses for good (too large, not authorized) is dropped with an error log and
 * `onDropped` instead: retrying it could never succeed and would stall every later alert.
 */
import type { Message, Producer } from 'kafkajs';
import { CompressionTypes } from 'kafkajs';
import { approximateRecordBytes } from '../bus/kafka.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { reasonOf, type AlertChange } from './change.js';
import { encodeRunSnapshot, type StateRecord } from './run-snapshot.js';

export interface OutboxTopics {
  alerts: string;
  state: string;
  deadLetter: string;
}

export type DroppableRecord = 'state' | 'dead-letter';

export interface OutboxOptions {
  logger?: Logger;
  /** `records` of `kind` were refused for good (`reason`: the Kafka error type) and dropped. */
  onDropped?: (kind: DroppableRecord, reason: string, records: number) => void;
}

/** One produce request carries at most this much: under a stock Kafka's 1 MB limit per record batch. */
export const MAX_REQUEST_BYTES = 512 * 1024;

/** Kafka errors that no retry can cure: the record, or this client, is refused as such. */
const REFUSED_FOR_GOOD = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
]);

/** The Kafka error type when `err` (or what caused it) is one no retry can cure; kafkajs wraps protocol errors. */
export function refusedForGood(err: unknown): string | undefined {
  for (let e = err as { type?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth += 1) {
    if (typeof e.type === 'string' && REFUSED_FOR_GOOD.has(e.type)) return e.type;
  }
  return undefined;
}

interface Queue {
  topic: string;
  /** What one record is, for errors and logs. */
  what: string;
  /** Undefined for alerts: an alert is never dropped. */
  droppable?: DroppableRecord;
  messages: Message[];
}

export class AlertOutbox {
  private readonly alerts: Queue;
  private readonly states: Queue;
  private readonly letters: Queue;
  private readonly logger: Logger;
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly producer: Producer,
    topics: OutboxTopics,
    private readonly options: OutboxOptions = {},
  ) {
    this.alerts = { topic: topics.alerts, what: 'alert change', messages: [] };
    this.states = { topic: topics.state, what: 'state record', droppable: 'state', messages: [] };
    this.letters = { topic: topics.deadLetter, what: 'dead letter', droppable: 'dead-letter', messages: [] };
    this.logger = options.logger ?? silentLogger;
  }

  /** Changes, state records and dead letters waiting to be written. */
  get pending(): number {
    return this.alerts.messages.length + this.states.messages.length + this.letters.messages.length;
  }

  add(changes: AlertChange[], states: StateRecord[] = [], deadLetters: Message[] = []): void {
    for (const { alert, kind } of changes) {
      this.alerts.messages.push({ key: alert.camera, value: JSON.stringify(alert), headers: { event: kind, 'alert-id': alert.id, reason: reasonOf(alert) } });
    }
    for (const { key, snapshot } of states) this.states.messages.push({ key, value: snapshot ? encodeRunSnapshot(snapshot) : null });
    this.letters.messages.push(...deadLetters);
  }

  /** Writes everything added so far; rejects (keeping what was not written for the next flush) when Kafka did not take it. */
  flush(): Promise<void> {
    const next = this.sending.then(() => this.send());
    this.sending = next.catch(() => {});
    return next;
  }

  private async send(): Promise<void> {
    // In this order: a state record or dead letter never holds an alert back.
    for (const queue of [this.alerts, this.states, this.letters]) await this.sendQueue(queue);
  }

  /** Sends the queue from its front (add() only appends), removing what Kafka took. */
  private async sendQueue(queue: Queue): Promise<void> {
    while (queue.messages.length > 0) {
      const request = frontRequest(queue.messages);
      try {
        await this.produce(queue.topic, request);
        queue.messages.splice(0, request.length);
        continue;
      } catch (err) {
        const refusal = queue.droppable ? refusedForGood(err) : undefined;
        if (refusal === undefined) throw this.failure(queue, err as Error);
      }
      // Refused for good: find the records to blame, one at a time, and drop only those.
      for (const message of request) {
        try {
          await this.produce(queue.topic, [message]);
        } catch (err) {
          const refusal = refusedForGood(err);
          if (refusal === undefined) throw this.failure(queue, err as Error);
          this.drop(queue, message, refusal, err as Error);
        }
        queue.messages.shift();
      }
    }
  }

  private async produce(topic: string, messages: Message[]): Promise<void> {
    await this.producer.sendBatch({ topicMessages: [{ topic, messages }], acks: -1, compression: CompressionTypes.None });
  }

  private drop(queue: Queue, message: Message, reason: string, err: Error): void {
    const kind = queue.droppable as DroppableRecord;
    this.logger.error(
      { topic: queue.topic, key: message.key?.toString().slice(0, 256), bytes: approximateRecordBytes(message), reason, err: err.message },
      `Kafka refused a ${queue.what} for good (${reason}); dropped so that later alerts are not held back. Check the topic's max.message.bytes and this client's ACLs`,
    );
    this.options.onDropped?.(kind, reason, 1);
  }

  private failure(queue: Queue, err: Error): Error {
    return new Error(
      `alert outbox: could not write ${queue.messages.length} ${queue.what}(s) to ${queue.topic} (${err.message}); kept for the next attempt (${this.pending} record(s) waiting in all)`,
    );
  }
}

/** The longest run of records from the front that fits one request (always at least one). */
function frontRequest(messages: Message[]): Message[] {
  let bytes = 0;
  let n = 0;
  for (const message of messages) {
    bytes += approximateRecordBytes(message);
    if (n > 0 && bytes > MAX_REQUEST_BYTES) break;
    n += 1;
  }
  return messages.slice(0, n);
}
