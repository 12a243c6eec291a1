/**
 * kafkajs 2.2.4 against the embedded broker over real loopback sockets.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Consumer, type EachMessagePayload } from 'kafkajs';
import { Reader } from '../src/broker/protocol/reader.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { waitFor, waitForQuiet } from './helpers/wait.js';
import { body, RawClient } from './helpers/broker-wire.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let server: TestBroker;
let kafka: Kafka;

beforeAll(async () => {
  server = await startTestBroker();
  kafka = new Kafka({ brokers: [server.address], clientId: 'broker-test', logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 8 } });
});

afterAll(async () => {
  await server?.close();
});

describe('kafkajs against the embedded broker', () => {
  it('produces and consumes 10,000 messages in order per partition, every key once', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'ten-thousand', numPartitions: 4 }] });
    for (let batch = 0; batch < 10; batch++) {
      await producer.send({
        topic: 'ten-thousand',
        acks: -1,
        messages: Array.from({ length: 1000 }, (_, i) => ({ key: `k${batch * 1000 + i}`, value: `value-${batch * 1000 + i}` })),
      });
    }
    const offsets = await admin.fetchTopicOffsets('ten-thousand');
    expect(offsets.reduce((sum, p) => sum + Number(p.high), 0)).toBe(10_000);

    const consumer = kafka.consumer({ groupId: 'ten-thousand-reader', sessionTimeout: 6000, heartbeatInterval: 500 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'ten-thousand', fromBeginning: true });
    const seen = new Map<string, number>();
    const lastOffset = new Map<number, number>();
    let outOfOrder = 0;
    await consumer.run({
      eachMessage: async ({ partition, message }: EachMessagePayload) => {
        const key = message.key!.toString();
        seen.set(key, (seen.get(key) ?? 0) + 1);
        expect(message.value!.toString()).toBe(`value-${key.slice(1)}`);
        const offset = Number(message.offset);
        if ((lastOffset.get(partition) ?? -1) >= offset) outOfOrder++;
        lastOffset.set(partition, offset);
      },
    });
    await waitFor(() => seen.size === 10_000, { timeout: 60_000, message: '10,000 messages' });
    await consumer.disconnect();
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(outOfOrder).toBe(0);
    const committed = await admin.fetchOffsets({ groupId: 'ten-thousand-reader', topics: ['ten-thousand'] });
    expect(committed[0]!.partitions.reduce((sum, p) => sum + Number(p.offset), 0)).toBe(10_000);
    await admin.disconnect();
    await producer.disconnect();
  });

  it('moves 1 MiB messages byte-for-byte', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const digests = new Map<string, string>();
    for (let send = 0; send < 6; send++) {
      const messages = Array.from({ length: 4 }, (_, i) => {
        const id = send * 4 + i;
        // Deterministic, incompressible-looking content from a PRNG seeded by the id.
        const value = Buffer.alloc(1024 * 1024);
        const words = new Uint32Array(value.buffer, value.byteOffset, value.length / 4);
        let state = (id + 1) * 0x9e3779b9;
        for (let w = 0; w < words.length; w++) {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          words[w] = state >>> 0;
        }
        digests.set(`m${id}`, createHash('sha256').update(value).digest('hex'));
        return { key: `m${id}`, value };
      });
      await producer.send({ topic: 'one-mebibyte', messages });
    }
    const consumer = kafka.consumer({ groupId: 'mebibyte-reader', maxBytesPerPartition: 2 * 1024 * 1024, sessionTimeout: 6000, heartbeatInterval: 500 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'one-mebibyte', fromBeginning: true });
    const received = new Map<string, string>();
    await consumer.run({
      eachMessage: async ({ message }) => {
        received.set(message.key!.toString(), createHash('sha256').update(message.value!).digest('hex'));
      },
    });
    await waitFor(() => received.size === 24, { timeout: 60_000, message: '24 messages of 1 MiB' });
    await consumer.disconnect();
    await producer.disconnect();
    expect(received).toEqual(digests);
  });

  it('rebalances a group of two consumers on join and leave; together they see every message exactly once', async () => {
    const topic = 'shared-work';
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 6 }] });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sendRange = async (from: number, to: number): Promise<void> => {
      for (let start = from; start < to; start += 500) {
        await producer.send({
          topic,
          messages: Array.from({ length: Math.min(500, to - start) }, (_, i) => ({ key: `k${start + i}`, value: String(start + i) })),
        });
      }
    };
    const counts = new Map<string, number>();
    const byConsumer = { a: 0, b: 0 };
    const assigned = { a: [] as number[], b: [] as number[] };
    const start = async (name: 'a' | 'b'): Promise<Consumer> => {
      const consumer = kafka.consumer({ groupId: 'pair', sessionTimeout: 6000, heartbeatInterval: 300, rebalanceTimeout: 10_000, maxWaitTimeInMs: 500 });
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        assigned[name] = (event.payload.memberAssignment[topic] ?? []).slice().sort();
      });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const key = message.key!.toString();
          counts.set(key, (counts.get(key) ?? 0) + 1);
          byConsumer[name]++;
        },
      });
      return consumer;
    };

    await sendRange(0, 3000);
    const a = await start('a');
    await waitFor(() => counts.size === 3000, { timeout: 60_000, message: 'consumer a to read the first 3000' });
    expect(assigned.a).toEqual([0, 1, 2, 3, 4, 5]);

    const b = await start('b');
    await waitFor(() => assigned.b.length > 0 && assigned.a.length > 0 && assigned.a.length + assigned.b.length === 6, {
      timeout: 60_000,
      message: 'the join rebalance',
    });
    expect([...assigned.a, ...assigned.b].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    await sendRange(3000, 7000);
    await waitFor(() => counts.size === 7000, { timeout: 60_000, message: 'both consumers to read messages 3000-6999' });
    expect(byConsumer.b).toBeGreaterThan(0);

    await b.disconnect(); // LeaveGroup: a takes every partition back
    await waitFor(() => assigned.a.length === 6, { timeout: 60_000, message: 'the leave rebalance' });
    await sendRange(7000, 10_000);
    await waitFor(() => counts.size === 10_000, { timeout: 60_000, message: 'consumer a to read the rest' });
    await a.disconnect();

    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    const committed = await admin.fetchOffsets({ groupId: 'pair', topics: [topic] });
    expect(committed[0]!.partitions.reduce((sum, p) => sum + Number(p.offset), 0)).toBe(10_000);
    const description = await admin.describeGroups(['pair']);
    expect(description.groups[0]!.state).toBe('Empty');
    await producer.disconnect();
    await admin.disconnect();
  });

  it('drops a member that stops heartbeating after its session timeout and gives its partitions to the rest', async () => {
    const topic = 'abandoned';
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] });
    const assigned: number[][] = [];
    const consumer = kafka.consumer({ groupId: 'abandon', sessionTimeout: 10_000, heartbeatInterval: 200, maxWaitTimeInMs: 200 });
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      assigned.push((event.payload.memberAssignment[topic] ?? []).slice().sort());
    });
    const keys = new Set<string>();
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        keys.add(message.key!.toString());
      },
    });
    await waitFor(() => assigned.length === 1, { timeout: 60_000, message: 'the first join' });

    // A second member, by hand: joins with a 1 s session, takes its assignment, then goes silent.
    const ghost = await RawClient.open(server.address);
    const metadata = body((w) => {
      w.int16(0)
        .array([topic], (x, t) => {
          x.string(t);
        })
        .bytes(Buffer.alloc(0));
    });
    const joined = new Reader(
      (await ghost.request(
        11,
        5,
        body((w) => {
          w.string('abandon').int32(1000).int32(30_000).string('').string(null).string('consumer');
          w.array(['RoundRobinAssigner'], (x, name) => {
            x.string(name).bytes(metadata);
          });
        }),
        false,
        30_000,
      ))!,
      4,
    );
    joined.int32();
    expect(joined.int16()).toBe(0);
    const generation = joined.int32();
    joined.string();
    joined.string();
    const ghostId = joined.string();
    const synced = await ghost.request(
      14,
      3,
      body((w) => {
        w.string('abandon')
          .int32(generation)
          .string(ghostId)
          .string(null)
          .array([], () => {});
      }),
      false,
      30_000,
    );
    expect(synced!.readInt16BE(8)).toBe(0);
    await waitFor(() => assigned.length >= 2 && assigned[assigned.length - 1]!.length === 2, { timeout: 60_000, message: 'the split with the ghost member' });

    await waitFor(() => assigned[assigned.length - 1]!.length === 4, { timeout: 60_000, message: 'the session timeout to hand every partition back' });
    const { groups } = await admin.describeGroups(['abandon']);
    expect(groups[0]!.members.length).toBe(1);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 400 }, (_, i) => ({ key: `g${i}`, value: 'x', partition: i % 4 })) });
    await waitFor(() => keys.size === 400, { timeout: 60_000, message: 'the survivor to read all four partitions' });
    ghost.close();
    await producer.disconnect();
    await consumer.disconnect();
    await admin.disconnect();
  });

  it('keeps a running consumer group across a broker restart: no record lost, none read twice', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-regroup-'));
    let restartable = await startTestBroker({ dataDir });
    const port = restartable.broker.port;
    const client = new Kafka({
      brokers: [restartable.address],
      clientId: 'restart-test',
      logLevel: logLevel.NOTHING,
      retry: { initialRetryTime: 200, retries: 20 },
    });
    const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
    const consumer = client.consumer({ groupId: 'survives-restart', sessionTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 300 });
    try {
      await producer.connect();
      await producer.send({ topic: 'across-restart', messages: Array.from({ length: 300 }, (_, i) => ({ key: `a${i}`, value: 'x' })) });
      const seen = new Map<string, number>();
      await consumer.connect();
      await consumer.subscribe({ topic: 'across-restart', fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const key = message.key!.toString();
          seen.set(key, (seen.get(key) ?? 0) + 1);
        },
      });
      await waitFor(() => seen.size === 300, { timeout: 60_000, message: 'the first 300 records' });

      await restartable.close();
      restartable = await startTestBroker({ dataDir, port });
      await producer.send({ topic: 'across-restart', messages: Array.from({ length: 300 }, (_, i) => ({ key: `b${i}`, value: 'x' })) });
      // All 600 in, then 500 ms without another delivery: a re-delivery would show up in that time.
      const deliveries = (): number => [...seen.values()].reduce((a, b) => a + b, 0);
      await waitForQuiet(deliveries, { atLeast: 600, quietMs: 500, timeout: 60_000, message: 'the 300 records produced after the restart' });
      expect(seen.size).toBe(600);
      expect([...seen].filter(([, n]) => n !== 1)).toEqual([]);
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
      await restartable.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
