/**
 * The mirror for an external Kafka: each durable record goes to the `audit` topic as its
 * canonical JSON (the bytes its hash chain covers, so a consumer can verify the chain from the
 * topic alone), with acks from all in-sync replicas.
 *
 * `key` names this trail (e.g. `<host>/<stage>`): one key keeps one trail's records on one
 * partition, in order, while several processes' trails share the topic.
 */
import type { Producer } from 'kafkajs';
import { canonicalJson } from './canonical.js';
import type { MirrorSend } from './mirror.js';

export function kafkaAuditMirror(producer: Pick<Producer, 'send'>, options: { topic: string; key: string }): MirrorSend {
  if (!options.topic) throw new TypeError('kafkaAuditMirror: topic is required (the prefixed `audit` topic, e.g. crystalwatch.audit)');
  if (!options.key) throw new TypeError('kafkaAuditMirror: key is required (a name for this trail, e.g. "<host>/<stage>")');
  return async (record) => {
    await producer.send({
      topic: options.topic,
      acks: -1,
      messages: [{ key: options.key, value: canonicalJson(record), headers: { seq: String(record.seq), kind: record.kind, hash: record.hash } }],
    });
  };
}
