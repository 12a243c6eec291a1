/**
 * librdkafka (Debian kcat 1.7.1, librdkafka 2.0.2) against the embedded broker,
 * side by side with kafkajs: metadata, produce/consume across clients, and a
 * consumer group shared by kcat -G and a kafkajs consumer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Kafka, logLevel, PartitionAssigners, type PartitionAssigner } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { kcat as kcatAt } from './helpers/broker-wire.js';
import { waitFor, waitForExit, waitForQuiet } from './helpers/wait.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let server: TestBroker;
let kafka: Kafka;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  server = await startTestBroker();
  kafka = new Kafka({ brokers: [server.address], clientId: 'kcat-test', logLevel: logLevel.NOTHING });
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await server?.close();
});

const kcat = (args: string[], input?: string): ReturnType<typeof kcatAt> => kcatAt(server.address, args, input);

describe('kcat (librdkafka) against the embedded broker', () => {
  it('kcat -L lists the broker and the topics with their partitions', async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'listed', numPartitions: 5 }] });
    await admin.disconnect();
    const { code, stdout } = await kcat(['-L', '-J']);
    expect(code).toBe(0);
    const metadata = JSON.parse(stdout) as {
      brokers: Array<{ id: number; name: string }>;
      topics: Array<{ topic: string; partitions: Array<{ partition: number; leader: number }> }>;
    };
    expect(metadata.brokers).toEqual([{ id: 0, name: server.address }]);
    const listed = metadata.topics.find((t) => t.topic === 'listed')!;
    expect(listed.partitions.map((p) => p.partition).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(listed.partitions.every((p) => p.leader === 0)).toBe(true);
  });

  it('kcat -P produces what kafkajs consumes', async () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `key${i}:value-${i}`).join('\n') + '\n';
    const produced = await kcat(['-P', '-t', 'from-kcat', '-K:', '-X', 'acks=all'], lines);
    expect(produced.code).toBe(0);
    const consumer = kafka.consumer({ groupId: 'reads-kcat', sessionTimeout: 6000, heartbeatInterval: 500 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'from-kcat', fromBeginning: true });
    const seen = new Map<string, string>();
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.set(message.key!.toString(), message.value!.toString());
      },
    });
    await waitFor(() => seen.size === 2000, { timeout: 60_000, message: 'kafkajs to read 2000 records from kcat' });
    await consumer.disconnect();
    expect(seen.get('key0')).toBe('value-0');
    expect(seen.get('key1999')).toBe('value-1999');
  });

  it('kcat -C consumes what kafkajs produced, with keys, headers and offsets intact', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: 'from-kafkajs',
      messages: Array.from({ length: 1500 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: i % 3, headers: { camera: 'cam-1' } })),
    });
    await producer.disconnect();
    const { code, stdout } = await kcat(['-C', '-t', 'from-kafkajs', '-o', 'beginning', '-e', '-q', '-f', '%p|%o|%k|%s|%h\n']);
    expect(code).toBe(0);
    const rows = stdout
      .trim()
      .split('\n')
      .map((line) => line.split('|'));
    expect(rows.length).toBe(1500);
    expect(new Set(rows.map((r) => r[2])).size).toBe(1500);
    expect(
      rows.every(
        ([partition, , key = '', value, headers]) =>
          value === `v${key.slice(1)}` && Number(key.slice(1)) % 3 === Number(partition) && headers === 'camera=cam-1',
      ),
    ).toBe(true);
    const partition0 = rows.filter((r) => r[0] === '0').map((r) => Number(r[1]));
    expect(partition0).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('kcat -G commits its offsets and the next run resumes after them', async () => {
    const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => String(from + i)).join('\n') + '\n';
    expect((await kcat(['-P', '-t', 'resumed'], lines(0, 300))).code).toBe(0);
    const first = await kcat(['-G', 'resumer', '-X', 'auto.offset.reset=earliest', '-q', '-e', '-f', '%s\n', 'resumed']);
    expect(first.stdout.trim().split('\n').length).toBe(300);
    expect((await kcat(['-P', '-t', 'resumed'], lines(300, 350))).code).toBe(0);
    const second = await kcat(['-G', 'resumer', '-X', 'auto.offset.reset=earliest', '-q', '-e', '-f', '%s\n', 'resumed']);
    expect(
      second.stdout
        .trim()
        .split('\n')
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 50 }, (_, i) => 300 + i));
    // kcat commits as it closes; the broker applies a commit on its own connection, so another
    // connection may read the offsets a moment before the last commit lands: wait for it (up to
    // 15 s: once, with the whole suite running on 2 cores, 5 s was not enough).
    const admin = kafka.admin();
    await admin.connect();
    const committed = async () => {
      const [offsets] = await admin.fetchOffsets({ groupId: 'resumer', topics: ['resumed'] });
      return offsets!.partitions.reduce((sum, p) => sum + Number(p.offset), 0);
    };
    try {
      await waitFor(async () => (await committed()) === 350, { timeout: 15_000, message: 'the committed offsets of group resumer to sum to 350' });
    } finally {
      await admin.disconnect();
    }
  });

  it('a kcat -G member and a kafkajs member share one group: every record read once', async () => {
    const topic = 'shared-by-clients';
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] });
    // Both members must offer an assignor by the same name; the consumer protocol bytes are standard.
    const roundrobin: PartitionAssigner = (config) => ({ ...PartitionAssigners.roundRobin(config), name: 'roundrobin' });
    const consumer = kafka.consumer({ groupId: 'mixed', partitionAssigners: [roundrobin], sessionTimeout: 10_000, heartbeatInterval: 500 });
    const seenByKafkajs: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seenByKafkajs.push(message.key!.toString());
      },
    });

    const member = spawn(
      'kcat',
      [
        '-b',
        server.address,
        '-G',
        'mixed',
        '-X',
        'partition.assignment.strategy=roundrobin',
        '-X',
        'auto.offset.reset=earliest',
        '-q',
        '-u',
        '-f',
        '%k\n',
        topic,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(member);
    let kcatOut = '';
    member.stdout.on('data', (chunk: Buffer) => {
      kcatOut += chunk.toString();
    });
    await waitFor(
      async () => {
        const { groups } = await admin.describeGroups(['mixed']);
        return groups[0]!.state === 'Stable' && groups[0]!.members.length === 2;
      },
      { timeout: 60_000, message: 'the mixed group to be stable with 2 members' },
    );

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 2000 }, (_, i) => ({ key: `m${i}`, value: 'x', partition: i % 4 })) });
    await producer.disconnect();
    const seenByKcat = (): string[] => kcatOut.split('\n').filter(Boolean);
    // All 2000 in, then 500 ms without another record: a duplicate would show up in that time.
    await waitForQuiet(() => seenByKcat().length + seenByKafkajs.length, {
      atLeast: 2000,
      quietMs: 500,
      timeout: 60_000,
      message: 'both members to read 2000 records',
    });

    const all = [...seenByKcat(), ...seenByKafkajs];
    expect(all.length).toBe(2000);
    expect(new Set(all).size).toBe(2000);
    expect(seenByKcat().length).toBe(1000);
    expect(seenByKafkajs.length).toBe(1000);

    member.kill('SIGTERM');
    await waitForExit(member, { timeout: 10_000, message: 'the kcat -G member to exit on SIGTERM' });
    children.delete(member);
    await consumer.disconnect();
    await admin.disconnect();
  });
});
