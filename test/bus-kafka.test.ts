/** Bus helpers against the real embedded broker: topics and batched sends. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { readTopic } from './helpers/topic.js';
import { createProducer, ensureTopics, sendBatched } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';

let kafka: Kafka;
let bus: TestBus;
beforeEach(async () => {
  bus = await startTestBus('bus-');
  ({ kafka } = bus);
});
afterEach(async () => {
  await bus.close();
});

describe('bus helpers (real broker)', () => {
  it('ensureTopics creates every topic with the partition count, and is idempotent', async () => {
    const topics = topicNames('t1.');
    const first = await ensureTopics(kafka, topics, 4);
    expect(first.created.sort()).toEqual(Object.values(topics).sort());
    const again = await ensureTopics(kafka, topics, 4);
    expect(again).toEqual({ created: [], grown: [] });
    const admin = kafka.admin();
    await admin.connect();
    const meta = await admin.fetchTopicMetadata({ topics: Object.values(topics) });
    await admin.disconnect();
    expect(meta.topics.map((t) => t.partitions.length)).toEqual(Object.values(topics).map(() => 4));
  });

  it('sendBatched splits big batches under the limit, keeps order, leaves bytes untouched', async () => {
    const topics = topicNames('t2.');
    await ensureTopics(kafka, topics, 1);
    const producer = createProducer(kafka);
    await producer.connect();
    const values = Array.from({ length: 12 }, (_, i) => Buffer.alloc(400 * 1024, i + 1));
    const results = await sendBatched(
      producer,
      topics.frames,
      values.map((value, i) => ({ key: 'cam', value, headers: { n: String(i) } })),
      1024 * 1024,
    );
    await producer.disconnect();
    expect(results.map((r) => r.messages.length)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(results.map((r) => r.metadata[0]!.baseOffset)).toEqual(['0', '2', '4', '6', '8', '10']);

    const reader = await readTopic(kafka, topics.frames, (r) => r.value!);
    const got = await reader.quiet({ atLeast: 12, quietMs: 300, timeout: 30_000, message: '12 records of 400 KiB' }).finally(() => reader.close());
    expect(got).toHaveLength(12);
    expect(got.map((b) => b[0])).toEqual(values.map((v) => v[0]));
    expect(got.every((b, i) => b.equals(values[i]!))).toBe(true);
  });
});
