/**
 * Malformed input must never stop the broker: random bytes, truncated frames,
 * lying size prefixes, unknown api keys and versions, and bit-flipped copies of
 * valid requests for every API. Afterwards a client connected before the abuse
 * and a new kafkajs client are both still served.
 */
import { Kafka, logLevel } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { body, buildBatch, produceBody, RawClient } from './helpers/broker-wire.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let server: TestBroker;
const registry = new Registry();

beforeAll(async () => {
  server = await startTestBroker({ messageMaxBytes: 1024 * 1024, registry });
});

afterAll(async () => {
  await server?.close();
});

/** mulberry32: a seeded PRNG so a failing case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Valid request bodies (api key, version, body, flexible header) to mutate. */
function validRequests(): Array<[number, number, Buffer, boolean]> {
  const batch = buildBatch([{ key: Buffer.from('k'), value: Buffer.from('fuzz') }]);
  return [
    [18, 0, Buffer.alloc(0), false],
    [18, 3, body((w) => { w.compactString('fuzz').compactString('1').emptyTaggedFields(); }), true],
    [3, 6, body((w) => { w.array(['fuzzed'], (x, t) => { x.string(t); }).boolean(true); }), false],
    [3, 0, body((w) => { w.array([], () => {}); }), false],
    [0, 7, produceBody('fuzzed', 0, batch), false],
    [1, 11, body((w) => {
      w.int32(-1).int32(10).int32(1).int32(1 << 20).int8(0).int32(0).int32(-1);
      w.array(['fuzzed'], (x, t) => { x.string(t).array([0], (p, i) => { p.int32(i).int32(-1).int64(0).int64(-1).int32(1 << 20); }); });
      w.array([], () => {}).string('');
    }), false],
    [2, 3, body((w) => { w.int32(-1).int8(0).array(['fuzzed'], (x, t) => { x.string(t).array([0], (p, i) => { p.int32(i).int64(-1); }); }); }), false],
    [10, 2, body((w) => { w.string('fuzz-group').int8(0); }), false],
    [11, 5, body((w) => { w.string('fuzz-group').int32(1000).int32(50).string('').string(null).string('consumer').array(['range'], (x, n) => { x.string(n).bytes(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0])); }); }), false],
    [12, 3, body((w) => { w.string('fuzz-group').int32(1).string('nobody').string(null); }), false],
    [13, 3, body((w) => { w.string('fuzz-group').array(['nobody'], (x, m) => { x.string(m).string(null); }); }), false],
    [14, 3, body((w) => { w.string('fuzz-group').int32(1).string('nobody').string(null).array([], () => {}); }), false],
    [8, 7, body((w) => { w.string('fuzz-group').int32(-1).string('').string(null).array(['fuzzed'], (x, t) => { x.string(t).array([0], (p, i) => { p.int32(i).int64(1).int32(-1).string(''); }); }); }), false],
    [9, 5, body((w) => { w.string('fuzz-group').array(null, () => {}); }), false],
    [15, 2, body((w) => { w.array(['fuzz-group'], (x, g) => { x.string(g); }); }), false],
    [16, 2, Buffer.alloc(0), false],
    [22, 1, body((w) => { w.string(null).int32(1000); }), false],
    [20, 1, body((w) => { w.array(['no-such-topic'], (x, t) => { x.string(t); }).int32(1000); }), false],
  ];
}

async function assertHealthy(): Promise<void> {
  const client = await RawClient.open(server.address);
  const response = await client.request(18, 2, Buffer.alloc(0));
  client.close();
  expect(response).not.toBeNull();
  expect(response!.readInt16BE(4)).toBe(0);
}

describe('broker under malformed input', () => {
  it('answers ApiVersions with an unknown version in the v0 layout with UNSUPPORTED_VERSION', async () => {
    const client = await RawClient.open(server.address);
    const response = await client.request(18, 99, Buffer.alloc(0), true);
    expect(response!.readInt16BE(4)).toBe(35);
    expect(response!.readInt32BE(6)).toBeGreaterThan(10); // the api_keys array is still there
    client.close();
  });

  it('closes the connection on unknown api keys, unknown versions, bad sizes and truncated headers', async () => {
    const cases: Array<[string, (c: RawClient) => void]> = [
      ['unknown api key', (c) => { c.send(999, 0, Buffer.alloc(8)); }],
      ['Metadata v99', (c) => { c.send(3, 99, Buffer.alloc(8)); }],
      ['negative size', (c) => { c.writeRaw(Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3])); }],
      ['size over the limit', (c) => { const b = Buffer.alloc(8); b.writeInt32BE(2_000_000_000); c.writeRaw(b); }],
      ['header shorter than it says', (c) => { c.writeRaw(Buffer.from([0, 0, 0, 8, 0, 3, 0, 1, 0, 0, 0, 1])); }],
      ['client id longer than the frame', (c) => { c.writeRaw(Buffer.from([0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff])); }],
      ['array count larger than the frame', (c) => { c.send(3, 1, Buffer.from([0x7f, 0xff, 0xff, 0xff])); }],
    ];
    for (const [name, send] of cases) {
      const client = await RawClient.open(server.address);
      send(client);
      const frame = await client.next();
      expect(frame, name).toBeNull();
      expect(client.closed, name).toBe(true);
    }
    await assertHealthy();
  });

  it('answers a batch with a bad CRC-32C with CORRUPT_MESSAGE and keeps the connection', async () => {
    const client = await RawClient.open(server.address);
    await client.request(3, 6, body((w) => { w.array(['crc-check'], (x, t) => { x.string(t); }).boolean(true); }));
    const batch = buildBatch([{ key: Buffer.from('k'), value: Buffer.from('the payload') }]);
    batch[batch.length - 3] ^= 0x55;
    const response = await client.request(0, 7, produceBody('crc-check', 0, batch));
    expect(response!.readInt16BE(4 + 4 + 2 + 'crc-check'.length + 4 + 4)).toBe(2);
    const good = await client.request(0, 7, produceBody('crc-check', 0, buildBatch([{ value: Buffer.from('ok') }])));
    expect(good!.readInt16BE(4 + 4 + 2 + 'crc-check'.length + 4 + 4)).toBe(0);
    client.close();
    const value = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
      const metric = (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
      return metric?.value ?? 0;
    };
    expect(await value('crystalwatch_broker_produce_errors_total', { error_code: '2' })).toBe(1);
    expect(await value('crystalwatch_broker_produced_records_total')).toBe(1);
    expect(await value('crystalwatch_broker_requests_total', { api: 'Produce' })).toBe(2);
    expect(await value('crystalwatch_broker_connections_rejected_total', { reason: 'size' })).toBe(2);
    expect(await value('crystalwatch_broker_connections_rejected_total', { reason: 'unknown_api' })).toBe(1);
  });

  it('survives random bytes and thousands of mutated requests, then still serves old and new clients', async () => {
    const kafka = new Kafka({ brokers: [server.address], clientId: 'fuzz-survivor', logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect(); // connected before the abuse starts
    await producer.send({ topic: 'survivor', messages: [{ key: 'before', value: 'x' }] });

    const random = prng(20261122);
    // 1. Pure noise, in odd-sized writes, on 50 connections.
    for (let i = 0; i < 50; i++) {
      const client = await RawClient.open(server.address);
      for (let writes = 0; writes < 5; writes++) {
        client.writeRaw(Buffer.from(Array.from({ length: 1 + Math.floor(random() * 300) }, () => Math.floor(random() * 256))));
      }
      client.close();
    }
    // 2. Valid requests with flipped bytes, truncations and extensions, 150 per API.
    const requests = validRequests();
    let answered = 0;
    let dropped = 0;
    for (const [apiKey, version, valid, flexible] of requests) {
      const client = await RawClient.open(server.address);
      for (let round = 0; round < 150 && !client.closed; round++) {
        const mutated = Buffer.from(valid);
        const mode = random();
        if (mode < 0.6) {
          for (let flips = 1 + Math.floor(random() * 4); flips > 0 && mutated.length > 0; flips--) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
        }
        const bytes = mode >= 0.6 && mode < 0.85 ? mutated.subarray(0, Math.floor(random() * mutated.length)) : mode >= 0.85 ? Buffer.concat([mutated, Buffer.from([Math.floor(random() * 256), 0xff, 0xff])]) : mutated;
        client.send(apiKey, version, bytes, flexible);
      }
      // Give the broker a moment to answer what it can, then drop the connection (pending joins included).
      await new Promise((r) => setTimeout(r, 50));
      if (client.closed) dropped++; else answered++;
      client.close();
    }
    expect(answered + dropped).toBe(requests.length);

    await assertHealthy();
    await producer.send({ topic: 'survivor', messages: [{ key: 'after', value: 'y' }] });
    const consumer = kafka.consumer({ groupId: 'survivor-reader', sessionTimeout: 6000, heartbeatInterval: 500 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'survivor', fromBeginning: true });
    const keys: string[] = [];
    await consumer.run({ eachMessage: async ({ message }) => { keys.push(message.key!.toString()); } });
    const started = Date.now();
    while (keys.length < 2 && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 20));
    await consumer.disconnect();
    await producer.disconnect();
    expect(keys.sort()).toEqual(['after', 'before']);
  });
});
