/** readTopics against the real embedded broker: reads to the end it saw at the start, then stops. */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { goneBroker, GONE_BROKER_ATTEMPTS } from './helpers/gone-broker.js';
import { waitFor } from './helpers/wait.js';
import { createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { readTopics, type ReadRecord } from '../src/report/read-topics.js';

let bus: TestBus;
const topics = topicNames('rd.');
beforeAll(async () => {
  bus = await startTestBus('report-read-');
  await ensureTopics(bus.kafka, topics, 3);
  const producer = createProducer(bus.kafka);
  await producer.connect();
  const old = Date.now() - 3_600_000;
  // 30 old records and 30 recent ones on predictions over 3 partitions; 5 on alerts; frames empty.
  await producer.send({
    topic: topics.predictions,
    messages: Array.from({ length: 30 }, (_, i) => ({ key: `cam-${i % 3}`, value: `old-${i}`, timestamp: String(old + i) })),
  });
  await producer.send({ topic: topics.predictions, messages: Array.from({ length: 30 }, (_, i) => ({ key: `cam-${i % 3}`, value: `new-${i}` })) });
  await producer.send({ topic: topics.alerts, messages: Array.from({ length: 5 }, (_, i) => ({ key: 'cam-0', value: `alert-${i}` })) });
  await producer.disconnect();
});
afterAll(async () => {
  await bus?.close();
});

describe('readTopics', () => {
  it('reads every record of several topics once, in offset order per partition, and ends', async () => {
    const seen: ReadRecord[] = [];
    const result = await readTopics(bus.kafka, {
      topics: [{ topic: topics.predictions }, { topic: topics.alerts }, { topic: topics.frames }, { topic: 'rd.absent' }],
      onRecord: (r) => {
        seen.push(r);
      },
    });
    expect(result).toEqual({ records: 65, missing: ['rd.absent'], stoppedEarly: [] });
    const values = seen.map((r) => r.message.value!.toString());
    expect(new Set(values).size).toBe(65);
    expect(values.filter((v) => v.startsWith('alert-')).sort()).toEqual(['alert-0', 'alert-1', 'alert-2', 'alert-3', 'alert-4']);
    for (const partition of [0, 1, 2]) {
      const offsets = seen.filter((r) => r.topic === topics.predictions && r.partition === partition).map((r) => Number(r.message.offset));
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
  });

  it('starts at a timestamp and does not read records produced after it began', async () => {
    const seen: string[] = [];
    const producer = createProducer(bus.kafka);
    await producer.connect();
    let sentLate = false;
    const result = await readTopics(bus.kafka, {
      topics: [{ topic: topics.predictions, fromTimestamp: Date.now() - 600_000 }],
      onRecord: (r) => {
        seen.push(r.message.value!.toString());
        if (!sentLate) {
          sentLate = true;
          void producer.send({ topic: topics.predictions, messages: [{ key: 'cam-0', value: 'late' }] });
        }
      },
    });
    await producer.disconnect();
    expect(result.records).toBe(30);
    expect(seen.every((v) => v.startsWith('new-'))).toBe(true);
  });

  it('stops early once done() says everything wanted was found', async () => {
    const seen: string[] = [];
    const result = await readTopics(bus.kafka, {
      topics: [{ topic: topics.alerts, done: () => seen.includes('alert-1') }],
      onRecord: (r) => {
        seen.push(r.message.value!.toString());
      },
    });
    expect(seen).toEqual(['alert-0', 'alert-1']);
    expect(result).toEqual({ records: 2, missing: [], stoppedEarly: [topics.alerts] });
  });

  it('ends at once with the reason when its signal aborts mid-read', async () => {
    const abort = new AbortController();
    const seen: string[] = [];
    const read = readTopics(bus.kafka, {
      topics: [{ topic: topics.predictions }],
      signal: abort.signal,
      onRecord: (r) => {
        seen.push(r.message.value!.toString());
        if (seen.length === 3) abort.abort(new Error('stopping'));
      },
    });
    await expect(read).rejects.toThrow('stopping');
    expect(seen).toHaveLength(3);
  });

  it('ends with the reason while kafkajs still retries the connect to a broker that is gone', async () => {
    const gone = await goneBroker();
    const abort = new AbortController();
    const read = readTopics(gone.kafka, { topics: [{ topic: topics.predictions }], signal: abort.signal, onRecord: () => undefined });
    await waitFor(() => gone.failedConnects >= 1, { timeout: 5_000, message: 'the first failed connect' });
    abort.abort(new Error('shutdown budget ran out'));
    // Not "cannot connect": kafkajs is still retrying when the read ends.
    await expect(read).rejects.toThrow('shutdown budget ran out');
    expect(gone.failedConnects).toBeLessThan(GONE_BROKER_ATTEMPTS);
    await waitFor(() => gone.failedConnects >= GONE_BROKER_ATTEMPTS, { timeout: 5_000, message: 'kafkajs to give the connect up' });
  });

  it('ends with the reason when aborted during its group join, and leaves the group once kafkajs has joined', async () => {
    const abort = new AbortController();
    let joined = false;
    // kafkajs logs each request at debug level: the abort comes as the JoinGroup request goes out.
    const kafka = new Kafka({
      clientId: 'join-abort-test',
      brokers: [bus.broker.address],
      logLevel: logLevel.DEBUG,
      logCreator: () => (entry) => {
        const message = String(entry.log.message);
        if (message.startsWith('Request JoinGroup')) queueMicrotask(() => abort.abort(new Error('stopping mid-join')));
        if (message === 'Consumer has joined the group') joined = true;
      },
    });
    const read = readTopics(kafka, { topics: [{ topic: topics.predictions }], signal: abort.signal, groupPrefix: 'join-abort', onRecord: () => undefined });
    await expect(read).rejects.toThrow('stopping mid-join');
    // The join the broker was answering completes; then the consumer leaves, and is not left running.
    await waitFor(() => joined, { timeout: 10_000, message: 'kafkajs to finish the join it was in' });
    const admin = bus.kafka.admin();
    await admin.connect();
    try {
      await waitFor(
        async () => {
          const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((id) => id.startsWith('join-abort'));
          const { groups } = await admin.describeGroups(ids);
          return ids.length > 0 && groups.every((g) => g.members.length === 0);
        },
        { timeout: 10_000, message: 'no member left in the read group' },
      );
    } finally {
      await admin.disconnect();
    }
  });

  it('refuses to start with a signal already aborted', async () => {
    const abort = new AbortController();
    abort.abort(new Error('already stopped'));
    await expect(readTopics(bus.kafka, { topics: [{ topic: topics.alerts }], signal: abort.signal, onRecord: () => undefined })).rejects.toThrow(
      'already stopped',
    );
  });
});
