/**
 * Reads topics from their beginning up to the high watermark they had when the read started,
 * once, without committing anything: how a restarted alert stage rebuilds its alerts (from the
 * `alerts` topic) and its detectors (from the state topic). Kafka, not a local disk, is the
 * durable store, so this works the same when the stage runs as its own process on a cluster.
 *
 * kafkajs has no manual partition assignment, so the read uses a consumer group of its own,
 * named once per read, that never commits.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { settleWithin } from '../config/stage-lifecycle.js';

export interface ReadToEndOptions {
  /** Consumer group name prefix; a random suffix makes every read its own group. */
  groupPrefix: string;
  /** Give up (with an error naming what was not read) after this long. Default 60 s. */
  timeoutMs?: number;
}

/** Calls `onMessage` for every record below each partition's high watermark, in offset order per partition; returns how many. */
export async function readToEnd(
  kafka: Kafka,
  topics: string[],
  onMessage: (topic: string, partition: number, message: KafkaMessage) => void,
  options: ReadToEndOptions,
): Promise<number> {
  const ends = new Map<string, bigint>();
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(p.high) > BigInt(p.low)) ends.set(`${topic}:${p.partition}`, BigInt(p.high));
      }
    }
  } finally {
    await admin.disconnect();
  }
  if (ends.size === 0) return 0;

  const consumer = kafka.consumer({
    groupId: `${options.groupPrefix}-${randomUUID()}`,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 4 * 1024 * 1024,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
  });
  let count = 0;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  try {
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const key = `${batch.topic}:${batch.partition}`;
        const end = ends.get(key);
        if (end === undefined) return;
        for (const message of batch.messages) {
          if (BigInt(message.offset) >= end) break;
          onMessage(batch.topic, batch.partition, message);
          count += 1;
        }
        if (BigInt(batch.lastOffset()) + 1n >= end) {
          ends.delete(key);
          if (ends.size === 0) finished();
        }
      },
    });
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (!(await settleWithin(done, timeoutMs))) {
      throw new Error(
        `reading ${topics.join(', ')} to the end took over ${timeoutMs} ms; still unread: ${[...ends.keys()].join(', ')}. Is the broker reachable and are these topics readable?`,
      );
    }
    return count;
  } finally {
    await settleWithin(consumer.disconnect(), 2000);
  }
}
