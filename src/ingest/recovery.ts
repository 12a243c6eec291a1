/**
 * "Did Kafka get these frames?" A frame whose ledger says `send` but not `ack` was
 * in flight when the process died or the broker went away: the broker may have
 * appended it and the answer got lost. Sending it again blindly would duplicate it,
 * so we read the `frames` topic from the last offset the ledger knows was acked and
 * look for the frame ids in the `frame-id` headers.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { createConsumer, DEFAULT_MAX_MESSAGE_BYTES } from '../bus/kafka.js';
import { headerString } from '../bus/messages.js';
import type { Logger } from '../config/logger.js';

export interface FoundFrame {
  partition: number;
  offset: string;
}

export interface FindOptions {
  /** Per partition, the highest offset known acknowledged; reading starts after it. */
  after: Map<number, bigint>;
  /** How far back to read in a partition the ledger knows nothing about. */
  lookback?: number;
  maxMessageBytes?: number;
  timeoutMs?: number;
  logger: Logger;
}

export async function findFrameIds(kafka: Kafka, topic: string, frameIds: Set<string>, options: FindOptions): Promise<Map<string, FoundFrame>> {
  const found = new Map<string, FoundFrame>();
  if (frameIds.size === 0) return found;
  const lookback = BigInt(options.lookback ?? 10_000);

  const admin = kafka.admin();
  await admin.connect();
  let offsets: Array<{ partition: number; high: string; low: string }>;
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(topic)) return found; // nothing was ever produced
    offsets = await admin.fetchTopicOffsets(topic);
  } finally {
    await admin.disconnect();
  }

  // Where to start and stop in each partition that has anything to read.
  const ranges = new Map<number, { start: bigint; end: bigint }>();
  for (const { partition, high, low } of offsets) {
    const end = BigInt(high);
    const known = options.after.get(partition);
    let start = known === undefined ? end - lookback : known + 1n;
    if (start < BigInt(low)) start = BigInt(low);
    if (start < end) ranges.set(partition, { start, end });
  }
  if (ranges.size === 0) return found;

  const consumer = createConsumer(kafka, `crystalwatch-ingest-recovery-${randomUUID()}`, {
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
  });
  const done = new Set<number>();
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const range = ranges.get(batch.partition);
        if (!range) return;
        for (const message of batch.messages) {
          const offset = BigInt(message.offset);
          if (offset < range.start || offset >= range.end) continue;
          const frameId = headerString(message.headers, 'frame-id');
          if (frameId !== undefined && frameIds.has(frameId) && !found.has(frameId)) found.set(frameId, { partition: batch.partition, offset: message.offset });
        }
        if (BigInt(batch.lastOffset()) >= range.end - 1n) {
          done.add(batch.partition);
          if (done.size === ranges.size || found.size === frameIds.size) finish();
        }
      },
    });
    for (const [partition, { start }] of ranges) consumer.seek({ topic, partition, offset: start.toString() });
    const timeoutMs = options.timeoutMs ?? 60_000;
    await Promise.race([
      finished,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `ingest recovery: reading ${topic} to check ${frameIds.size} unacknowledged frame(s) took over ${timeoutMs} ms; is the broker healthy?`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
    options.logger.info({ topic, checked: frameIds.size, found: found.size }, 'checked unacknowledged frames against Kafka');
    return found;
  } finally {
    if (timer) clearTimeout(timer);
    await consumer.disconnect().catch(() => undefined);
  }
}
