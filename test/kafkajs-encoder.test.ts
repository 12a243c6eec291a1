/**
 * kafkajs' Encoder keeping large values by reference (src/bus/kafkajs-encoder.ts): the bytes it
 * produces are the same as kafkajs' own Encoder's for any sequence of writes, a whole produce
 * request included, and records of a megabyte and more travel through the broker intact.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer, kafkajsEncoder } from '../src/bus/kafka.js';
import { LARGE_CHUNK_BYTES, encoderRefusal, kafkajsOwnEncoder } from '../src/bus/kafkajs-encoder.js';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { waitFor } from './helpers/wait.js';

const require = createRequire(import.meta.url);

interface Encoder {
  writeInt8(v: number): Encoder;
  writeInt16(v: number): Encoder;
  writeInt32(v: number): Encoder;
  writeInt64(v: number): Encoder;
  writeVarInt(v: number): Encoder;
  writeString(v: string): Encoder;
  writeVarIntString(v: string): Encoder;
  writeBytes(v: Buffer | string | null): Encoder;
  writeVarIntBytes(v: Buffer): Encoder;
  writeBuffer(v: Buffer): Encoder;
  writeEncoder(v: Encoder): Encoder;
  writeArray(v: Encoder[]): Encoder;
  size(): number;
  buffer: Buffer;
}
const Encoder = require('kafkajs/src/protocol/encoder.js') as { new (size?: number): Encoder; prototype: object };
type ProduceV3 = (o: object) => { encode: () => Promise<Encoder> };
const produceV3 = require('kafkajs/src/protocol/requests/produce/v3/request.js') as ProduceV3;
const request = require('kafkajs/src/protocol/request.js') as (o: object) => Promise<Encoder>;

/** Runs `fn` with kafkajs' own Encoder methods, then puts the chunked ones back. */
async function withKafkajsOwn<T>(fn: () => T | Promise<T>): Promise<T> {
  const chunked = Object.getOwnPropertyDescriptors(Encoder.prototype);
  Object.defineProperties(Encoder.prototype, kafkajsOwnEncoder!);
  try {
    return await fn();
  } finally {
    Object.defineProperties(Encoder.prototype, chunked);
  }
}

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** The same pseudo-random writes, nested three deep, with values either side of the chunk size and of 1 MB. */
function encode(seed: number): { bytes: Buffer; size: number } {
  const next = xorshift(seed);
  const value = (n: number) => Buffer.alloc(n, next() & 0xff);
  const outer = new Encoder();
  for (let i = 0; i < 60; i += 1) {
    const inner = new Encoder(next() % 64);
    switch (next() % 8) {
      case 0:
        inner.writeInt8(next() % 128).writeInt16(next() % 30000);
        break;
      case 1:
        inner.writeInt32(next() | 0).writeInt64(next());
        break;
      case 2:
        inner.writeVarInt(next() % 100000).writeString(`ünïcode-${next()}`);
        break;
      case 3:
        inner
          .writeVarIntString(`cam-${next() % 8}`)
          .writeBytes(null)
          .writeBytes('a string value');
        break;
      case 4:
        inner.writeBytes(value(next() % 5000)).writeBytes(value(LARGE_CHUNK_BYTES + (next() % 3) - 1));
        break;
      case 5:
        // A chunked encoder read (joined), then written on and nested again.
        inner.writeBuffer(value(70_000)).writeInt16(7);
        inner.writeInt32(inner.buffer.length).writeBuffer(value(LARGE_CHUNK_BYTES)).writeString('after');
        break;
      case 6:
        inner.writeArray([new Encoder().writeVarIntBytes(value(next() % 70000)), new Encoder().writeInt8(1)]);
        break;
      default:
        inner.writeVarIntBytes(value(i === 30 ? 1_100_000 : next() % 70000));
    }
    outer.writeEncoder(inner);
    if (i % 17 === 0) outer.writeInt32(outer.size());
  }
  const whole = new Encoder().writeInt32(outer.buffer.length).writeEncoder(outer);
  return { bytes: whole.buffer, size: whole.size() };
}

describe("kafkajs' Encoder, chunked", () => {
  it('is installed for the kafkajs this was written against', () => {
    expect(kafkajsEncoder).toEqual({ encoder: 'chunked' });
    expect(kafkajsOwnEncoder).toBeDefined();
    // The two differ where it matters: a large value is kept by reference, not copied.
    const value = Buffer.alloc(LARGE_CHUNK_BYTES, 1);
    const holds = (e: Encoder) => (e as unknown as { chunks?: Buffer[] }).chunks?.some((c) => c.buffer === value.buffer) === true;
    expect(holds(new Encoder().writeBytes(value))).toBe(true);
    return withKafkajsOwn(() => expect(holds(new Encoder().writeBytes(value))).toBe(false));
  });

  it('is refused for another kafkajs release or another encoder.js, saying which', () => {
    const installed = createHash('sha256')
      .update(readFileSync(require.resolve('kafkajs/src/protocol/encoder.js')))
      .digest('hex');
    expect(encoderRefusal('2.2.4', installed)).toBeUndefined();
    expect(encoderRefusal('2.3.0', installed)).toMatch(/kafkajs 2\.3\.0 is not 2\.2\.4/);
    expect(encoderRefusal('2.2.4', 'f'.repeat(64))).toMatch(/encoder\.js is not the one this was written for \(SHA-256 f{64}\)/);
    expect(encoderRefusal(undefined, undefined)).toMatch(/kafkajs undefined is not/);
  });

  it('joins a request once: a second read of .buffer is the same Buffer, and writing on after it still adds', () => {
    const e = new Encoder().writeInt16(1).writeBytes(Buffer.alloc(LARGE_CHUNK_BYTES * 2, 7));
    const first = e.buffer;
    expect(e.buffer).toBe(first);
    e.writeInt8(9);
    expect(e.buffer.length).toBe(first.length + 1);
    expect(e.buffer[first.length]).toBe(9);
  });

  it('writes exactly the bytes of kafkajs own Encoder, and the same size()', async () => {
    for (const seed of [1, 2, 3, 99, 12345]) {
      const chunked = encode(seed);
      const own = await withKafkajsOwn(() => encode(seed));
      expect(chunked.size, `seed ${seed}`).toBe(own.size);
      expect(chunked.bytes.length, `seed ${seed}`).toBe(own.bytes.length);
      expect(chunked.bytes.equals(own.bytes), `seed ${seed}`).toBe(true);
    }
  });

  it('encodes a produce request of 1 MB frames byte for byte as kafkajs does', async () => {
    const next = xorshift(7);
    const frame = Buffer.alloc(1_200_000);
    for (let i = 0; i < frame.length; i += 4) frame.writeUInt32LE(next(), i);
    const messages = [0, 1, 2].map((i) => ({
      key: `cam-${i}`,
      value: i === 1 ? Buffer.from('{"small":true}') : frame.subarray(i * 1000),
      headers: { 'frame-id': `cam-${i}-x`, 'content-type': 'image/png' },
      timestamp: '1700000000000',
    }));
    const encodeRequest = async () => {
      const produce = produceV3({
        acks: -1,
        timeout: 30000,
        compression: 0,
        topicData: [{ topic: 'crystalwatch.frames', partitions: [{ partition: 0, firstSequence: 0, messages }] }],
      });
      const encoder = await request({ correlationId: 3, clientId: 'test', request: { apiKey: 0, apiVersion: 3, encode: produce.encode } });
      return encoder.buffer;
    };
    const chunked = await encodeRequest();
    const own = await withKafkajsOwn(encodeRequest);
    expect(chunked.length).toBe(own.length);
    expect(chunked.equals(own)).toBe(true);
  });

  describe('through the embedded broker', () => {
    let bus: TestBus;
    beforeAll(async () => {
      bus = await startTestBus('cw-encoder-');
    });
    afterAll(async () => {
      await bus?.close();
    });

    it('delivers 1 MB records and small ones intact (the broker checks every batch CRC)', async () => {
      const topic = 'encoder-roundtrip';
      const next = xorshift(11);
      const values = [1_300_000, 12, LARGE_CHUNK_BYTES, 900_000].map((n) => {
        const b = Buffer.alloc(n);
        for (let i = 0; i < n; i += 1) b[i] = next() & 0xff;
        return b;
      });
      const producer = createProducer(bus.kafka);
      await producer.connect();
      try {
        await producer.send({ topic, messages: values.map((value) => ({ key: 'one-partition', value })) });
      } finally {
        await producer.disconnect();
      }
      const received: Buffer[] = [];
      const consumer = bus.kafka.consumer({ groupId: 'encoder-test', maxBytesPerPartition: 4 * 1024 * 1024 });
      await consumer.connect();
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({ eachMessage: async ({ message }) => void received.push(message.value!) });
        await waitFor(() => received.length === values.length, { timeout: 15_000, message: `4 records consumed (got ${received.length})` });
      } finally {
        await consumer.disconnect();
      }
      expect(received.map((b) => b.length)).toEqual(values.map((b) => b.length));
      received.forEach((b, i) => expect(b.equals(values[i]!), `record ${i}`).toBe(true));
    });
  });
});
