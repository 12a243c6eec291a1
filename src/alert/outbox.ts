/**
 * The outbox writer. Every alert change goes to the `alerts` topic (key = camera, value = the
 * alert JSON, header `event` = firing | resolved | acknowledged), and the camera-runs it touched
 * to the state topic, in one produce request with acks from every in-sync replica on the
 * idempotent producer. The alert stage commits the `predictions` offsets that raised a change
 * only after `flush()` resolved: a change is durable before its cause is forgotten.
 *
 * A failed flush keeps everything it held, in order, and the next flush sends it again (the
 * alert ids are stable, so a change written twice is one change to its receivers).
 */
import type { Message, Producer, TopicMessages } from 'kafkajs';
import { CompressionTypes } from 'kafkajs';
import { reasonOf, type AlertChange } from './change.js';
import type { StateRecord } from './run-snapshot.js';

export interface OutboxTopics {
  alerts: string;
  state: string;
  deadLetter: string;
}

export class AlertOutbox {
  private alerts: Message[] = [];
  private states: Message[] = [];
  private letters: Message[] = [];
  private sending: Promise<void> = Promise.resolve();

  constructor(private readonly producer: Producer, private readonly topics: OutboxTopics) {}

  /** Changes and state records waiting to be written. */
  get pending(): number {
    return this.alerts.length + this.states.length + this.letters.length;
  }

  add(changes: AlertChange[], states: StateRecord[] = [], deadLetters: Message[] = []): void {
    for (const { alert, kind } of changes) {
      this.alerts.push({ key: alert.camera, value: JSON.stringify(alert), headers: { event: kind, 'alert-id': alert.id, reason: reasonOf(alert) } });
    }
    for (const { key, snapshot } of states) this.states.push({ key, value: snapshot ? JSON.stringify(snapshot) : null });
    this.letters.push(...deadLetters);
  }

  /** Writes everything added so far; rejects (keeping it for the next flush) when Kafka did not take it. */
  flush(): Promise<void> {
    const next = this.sending.then(() => this.send());
    this.sending = next.catch(() => {});
    return next;
  }

  private async send(): Promise<void> {
    if (this.pending === 0) return;
    const alerts = this.alerts.splice(0);
    const states = this.states.splice(0);
    const letters = this.letters.splice(0);
    const topicMessages: TopicMessages[] = [];
    if (alerts.length > 0) topicMessages.push({ topic: this.topics.alerts, messages: alerts });
    if (states.length > 0) topicMessages.push({ topic: this.topics.state, messages: states });
    if (letters.length > 0) topicMessages.push({ topic: this.topics.deadLetter, messages: letters });
    try {
      await this.producer.sendBatch({ topicMessages, acks: -1, compression: CompressionTypes.None });
    } catch (err) {
      this.alerts.unshift(...alerts);
      this.states.unshift(...states);
      this.letters.unshift(...letters);
      throw new Error(`alert outbox: could not write ${alerts.length} alert change(s) and ${states.length} state record(s) to Kafka (${(err as Error).message}); kept for the next attempt`);
    }
  }
}
