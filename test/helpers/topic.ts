/**
 * Reading a topic back in a test: a fresh consumer group from the beginning that keeps every
 * delivery (duplicates too: a test that counts must see them), and a wait for the topic to go
 * quiet once the expected records are in.
 *
 *   const frames = await readTopic(kafka, topics.frames, (r) => decodeFrameHeaders(r.headers));
 *   await frames.quiet({ atLeast: 1000, quietMs: 1500, timeout: 60_000, message: '1,000 frames' });
 *   expect(frames.records).toHaveLength(1000);
 *   await frames.close();
 */
import type { IHeaders, Kafka } from 'kafkajs';
import { createConsumer } from '../../src/bus/kafka.js';
import { waitForQuiet, type QuietOptions } from './wait.js';

export interface TopicRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders | undefined;
}

export interface TopicReader<T> {
  /** Every record delivered so far, in delivery order, as `decode` returned it. */
  readonly records: T[];
  /** Waits for `atLeast` records and then `quietMs` without a new one; resolves with all records. */
  quiet(options: Omit<QuietOptions, 'interval'>): Promise<T[]>;
  /** Disconnects the consumer (idempotent). */
  close(): Promise<void>;
}

let readers = 0;

/**
 * Reads `topic` (or several) from the beginning with its own group. `decode` maps a record to
 * what the test keeps; returning undefined skips it (a marker record), throwing fails the read.
 */
export async function readTopic<T = TopicRecord>(
  kafka: Kafka,
  topic: string | string[],
  decode: (record: TopicRecord) => T | undefined = (r) => r as T,
): Promise<TopicReader<T>> {
  readers += 1;
  const consumer = createConsumer(kafka, `test-reader-${process.pid}-${readers}-${Date.now()}`);
  const records: T[] = [];
  let failure: Error | undefined;
  await consumer.connect();
  await consumer.subscribe({ topics: Array.isArray(topic) ? topic : [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic: from, partition, message }) => {
      try {
        const value = decode({ topic: from, partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers });
        if (value !== undefined) records.push(value);
      } catch (err) {
        failure ??= err as Error;
      }
    },
  });
  let closing: Promise<void> | undefined;
  return {
    records,
    async quiet(options) {
      await waitForQuiet(
        () => {
          if (failure) throw failure;
          return records.length;
        },
        { ...options, detail: () => `${records.length} records read${options.detail ? `\n${options.detail()}` : ''}` },
      );
      return records;
    },
    close: () => (closing ??= consumer.disconnect()),
  };
}
