/**
 * The broker as a child process (`crystalwatch broker --port 0`), stopped with
 * SIGTERM and with SIGKILL: no record acknowledged with acks=all and no
 * committed offset may be lost, and a torn write at a segment's tail is cut
 * off on restart instead of being served.
 */
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import { BrokerProcess } from './helpers/broker.js';
import { waitFor, waitForQuiet } from './helpers/wait.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let dataDir: string;
let broker: BrokerProcess;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-durable-'));
  broker = new BrokerProcess(dataDir);
  await broker.start();
});

afterAll(async () => {
  await broker?.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

const client = (retries = 5): Kafka =>
  new Kafka({ brokers: [broker.address], clientId: 'durability-test', logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries } });

async function highWatermarks(admin: Admin, topic: string): Promise<number[]> {
  return (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition).map((p) => Number(p.high));
}

async function committed(admin: Admin, groupId: string, topic: string): Promise<Record<number, string>> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  assert(offsets, `committed offsets of ${groupId} on ${topic}`);
  return Object.fromEntries(offsets.partitions.map((p) => [p.partition, p.offset]));
}

/** Reads the whole topic with a fresh group: every key seen and how often (a duplicate shows as 2). */
async function readAllKeys(kafka: Kafka, topic: string, expected: number): Promise<Map<string, number>> {
  const consumer = kafka.consumer({ groupId: `reader-${Date.now()}-${Math.random()}`, sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const keys = new Map<string, number>();
  let total = 0;
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      total++;
      const key = message.key!.toString();
      keys.set(key, (keys.get(key) ?? 0) + 1);
    },
  });
  try {
    // `expected` records, then 500 ms with no more: a duplicate would show up in that time.
    await waitForQuiet(() => total, { atLeast: expected, quietMs: 500, timeout: 60_000, message: `${expected} records of ${topic}` });
  } finally {
    await consumer.disconnect();
  }
  return keys;
}

describe('broker durability across restarts', () => {
  it('keeps acknowledged records and committed offsets over SIGTERM and SIGKILL, and truncates a torn tail', async () => {
    const topic = 'durable';
    let kafka = client();
    let admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let batch = 0; batch < 20; batch++) {
      await producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: 100 }, (_, i) => ({ key: `a${batch * 100 + i}`, value: `payload-${batch * 100 + i}` })),
      });
    }
    await producer.disconnect();

    // A group consumes everything and commits on the way out.
    const consumer = kafka.consumer({ groupId: 'durable-group', sessionTimeout: 6000, heartbeatInterval: 500 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let consumed = 0;
    await consumer.run({
      eachMessage: async () => {
        consumed++;
      },
    });
    await waitFor(() => consumed >= 2000, { timeout: 60_000, message: 'durable-group to consume the 2000 records' });
    await consumer.disconnect();
    const groupOffsets = await committed(admin, 'durable-group', topic);
    expect(Object.values(groupOffsets).reduce((sum, o) => sum + Number(o), 0)).toBe(2000);
    await admin.disconnect();

    // Graceful restart on the same port.
    expect(await broker.stop()).toBe(0);
    await broker.start(broker.port);
    kafka = client();
    admin = kafka.admin();
    await admin.connect();
    expect((await highWatermarks(admin, topic)).reduce((a, b) => a + b, 0)).toBe(2000);
    expect(await committed(admin, 'durable-group', topic)).toEqual(groupOffsets);

    // A commit made just before the crash, and a producer streaming when it happens.
    await admin.setOffsets({
      groupId: 'manual-group',
      topic,
      partitions: [
        { partition: 0, offset: '7' },
        { partition: 1, offset: '11' },
        { partition: 2, offset: '13' },
      ],
    });
    const manualOffsets = await committed(admin, 'manual-group', topic);
    await admin.disconnect();
    const streaming = client(0).producer({ allowAutoTopicCreation: false });
    await streaming.connect();
    const acknowledged: string[] = [];
    let crashed = false;
    const loop = (async () => {
      for (let batch = 0; !crashed; batch++) {
        const keys = Array.from({ length: 50 }, (_, i) => `b${batch * 50 + i}`);
        try {
          await streaming.send({ topic, acks: -1, messages: keys.map((key) => ({ key, value: `payload-${key}` })) });
          acknowledged.push(...keys);
        } catch {
          return;
        }
      }
    })();
    await waitFor(() => acknowledged.length >= 1500, { timeout: 60_000, interval: 5, message: '1500 records acknowledged before the crash' });
    await broker.kill();
    crashed = true;
    await loop;
    await streaming.disconnect().catch(() => {});

    // Simulate a write torn by the crash: half a batch header and junk at partition 0's tail.
    const partitionDir = join(dataDir, 'topics', topic, '0');
    const segment = readdirSync(partitionDir)
      .filter((f) => f.endsWith('.log'))
      .sort()
      .pop()!;
    const torn = Buffer.alloc(40, 0xab);
    torn.writeBigInt64BE(999_999n, 0);
    torn.writeInt32BE(5000, 8);
    appendFileSync(join(partitionDir, segment), torn);

    await broker.start(broker.port);
    kafka = client();
    admin = kafka.admin();
    await admin.connect();
    const high = await highWatermarks(admin, topic);
    const total = high.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(2000 + acknowledged.length);
    const keys = await readAllKeys(kafka, topic, total);
    const lost = [...acknowledged, ...Array.from({ length: 2000 }, (_, i) => `a${i}`)].filter((key) => !keys.has(key));
    expect(lost).toEqual([]);
    expect([...keys.values()].every((n) => n === 1)).toBe(true);
    expect(broker.stderr).toContain('truncating torn write');
    expect(await committed(admin, 'durable-group', topic)).toEqual(groupOffsets);
    expect(await committed(admin, 'manual-group', topic)).toEqual(manualOffsets);

    // The recovered log keeps taking writes at the right offsets.
    const after = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await after.connect();
    const [result] = await after.send({ topic, acks: -1, messages: [{ key: 'after', value: 'x', partition: 0 }] });
    assert(result, 'the record metadata of the send');
    expect(Number(result.baseOffset)).toBe(high[0]);
    await after.disconnect();
    await admin.disconnect();
  });
});
