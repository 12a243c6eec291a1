// The `audit` topic mirror through kafkajs against the embedded broker: what a plant's consumer gets.
import { afterEach, describe, expect, it } from 'vitest';
import type { Consumer, Producer } from 'kafkajs';
import { AuditTrail, GENESIS_HASH, kafkaAuditMirror, recordHash, type AuditRecord } from '../src/audit/index.js';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { waitFor } from './helpers/wait.js';

const open: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const part of open.splice(0).reverse()) await part.close();
});

describe('audit mirror to Kafka', () => {
  it('puts every record on the topic in order, as its canonical bytes, under the trail key', async () => {
    const bus: TestBus = await startTestBus('audit-kafka-');
    open.push(bus);
    const topic = 'crystalwatch.audit';
    const producer: Producer = bus.kafka.producer({ allowAutoTopicCreation: true });
    await producer.connect();
    open.push({ close: () => producer.disconnect() });
    const trail = await AuditTrail.open({ dir: bus.dir, mirror: kafkaAuditMirror(producer, { topic, key: 'host-1/monitor' }) });
    open.push(trail);
    await trail.append('run.started', { runId: 'run-7', camera: 'cam-1' });
    await trail.append('alert.fired', { alertId: 'a-1', camera: 'cam-1', runId: 'run-7', startsAt: '2026-03-01T10:00:00.000Z' });
    await trail.append('alert.acknowledged', { alertId: 'a-1', who: 'operator-7', when: '2026-03-01T10:01:00.000Z', via: 'web' }, 'operator-7');

    const consumer: Consumer = bus.kafka.consumer({ groupId: 'audit-test' });
    await consumer.connect();
    open.push({ close: () => consumer.disconnect() });
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: { key: string; value: string; seq: string; partition: number }[] = [];
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        got.push({ key: String(message.key), value: String(message.value), seq: String(message.headers?.seq), partition });
      },
    });
    await waitFor(() => got.length >= 3, { timeout: 60_000, message: 'the 3 audit records on the audit topic' });
    expect(got.map((m) => m.seq)).toEqual(['1', '2', '3']);
    expect(new Set(got.map((m) => `${m.key}@${m.partition}`)).size).toBe(1); // one trail, one partition, in order
    // A consumer can check the chain from the topic alone.
    const records = got.map((m) => JSON.parse(m.value) as AuditRecord);
    expect(records[0]!.prev).toBe(GENESIS_HASH);
    for (let i = 0; i < records.length; i += 1) {
      expect(recordHash(records[i]!)).toBe(records[i]!.hash);
      if (i > 0) expect(records[i]!.prev).toBe(records[i - 1]!.hash);
    }
    expect(records[2]).toMatchObject({ kind: 'alert.acknowledged', actor: 'operator-7', data: { who: 'operator-7' } });
  });
});
